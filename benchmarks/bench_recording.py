"""What recording costs: a fast loop's epochs per second inside ``python -m harness run`` and bare.

    python benchmarks/bench_recording.py                      # numpy, 2000 epochs, 5 rounds
    python benchmarks/bench_recording.py --variant lists --epochs 5 --repeats 3

Each round runs, one after the other in fresh processes with the same environment
(BLAS on one thread): the loop bare (built and trained in a plain Python process,
timed from the first epoch's start to the last epoch's end), the loop under
``run`` (the same span, from epochs.csv's ``elapsed_s``), and under ``run --trace``.
Rounds interleave the conditions, so load on a shared machine hits them alike:
compare the ratios within a round, not the absolute figures.  It also times the
per-epoch measurements the worker takes, one by one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.storage import load_run

BARE = """
import json, sys, time
from harness.interface import RunConfig
from harness.loops import load_loop_class
epochs = int(sys.argv[2])
loop = load_loop_class(sys.argv[1])(RunConfig(epochs=epochs))
start = time.monotonic()
for epoch in range(1, epochs + 1):
    loop.train_epoch(epoch)
print(json.dumps({"elapsed_s": time.monotonic() - start}))
"""

PROBES = """
import json, os, resource, sys, time
import psutil
from harness import records
from harness.worker import Channel, memory_now
process = psutil.Process()
read, write = os.pipe()
channel = Channel(write)
record = records.EpochRecord(1, 1, 1, None, 1, 0.1, 0.1, {"loss": 0.5, "accuracy": 0.9, "correct_prob": 0.8})
def drain():
    os.read(read, 1 << 16)
probes = {
    "rss and peak rss (VmRSS, VmHWM: one read of /proc/self/status)": memory_now,
    "for comparison: rss by psutil memory_info": lambda: process.memory_info().rss,
    "py_blocks (sys.getallocatedblocks)": sys.getallocatedblocks,
    "record: build, check and send over the pipe": lambda: (
        channel.send("epoch", **records.EpochRecord(**record.to_dict()).to_dict()),
        drain(),
    ),
}
out = {}
for name, probe in probes.items():
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        probe()
    out[name] = (time.perf_counter() - start) / n * 1e6
print(json.dumps(out))
"""


def environment() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    return env


def bare(variant: str, epochs: int) -> float:
    """Epochs per second of the loop in a plain process."""
    done = subprocess.run(
        [sys.executable, "-c", BARE, variant, str(epochs)],
        capture_output=True,
        text=True,
        check=True,
        env=environment(),
    )
    return epochs / json.loads(done.stdout)["elapsed_s"]


def recorded(variant: str, epochs: int, results: Path, *extra: str) -> float:
    """Epochs per second of the loop under ``python -m harness run``, from its epochs.csv."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--variant",
            variant,
            "--epochs",
            str(epochs),
            "--quiet",
            "--results",
            str(results),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=environment(),
    )
    run = load_run(done.stdout.strip().splitlines()[-1])
    return epochs / float(run.epochs["elapsed_s"].iloc[-1])


def main() -> None:
    """Run the rounds and print epochs/s per condition and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="numpy")
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"bare": [], "run": [], "run --trace": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            rates["bare"].append(bare(args.variant, args.epochs))
            rates["run"].append(recorded(args.variant, args.epochs, Path(tmp)))
            rates["run --trace"].append(recorded(args.variant, args.epochs, Path(tmp), "--trace"))
            print(
                f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()) + " epochs/s",
                file=sys.stderr,
            )
    print(
        f"{args.variant}, {args.epochs} epochs, {args.repeats} rounds"
        " (median epochs/s; ratio = median of per-round ratios)"
    )
    for name, values in rates.items():
        ratios = [value / base for value, base in zip(values, rates["bare"])]
        print(
            f"  {name:<12} {statistics.median(values):9.1f} epochs/s   ratio to bare {statistics.median(ratios):.3f}"
            f"   (rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
        )
    probes = json.loads(
        subprocess.run([sys.executable, "-c", PROBES], capture_output=True, text=True, check=True).stdout
    )
    print("per-epoch measurements in the worker (microseconds per call, this machine, now):")
    for name, micros in probes.items():
        print(f"  {micros:7.1f} us  {name}")
    print(
        f"measured at {time.strftime('%Y-%m-%d %H:%M:%S')} with load average {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
