"""What recording costs: a fast loop's epochs per second inside ``python -m harness run`` and bare.

    python benchmarks/bench_recording.py                      # numpy, 2000 epochs, 5 rounds
    python benchmarks/bench_recording.py --variant lists --epochs 5 --repeats 3

Each round runs, one after the other in fresh processes with the same environment
(BLAS on one thread): the loop bare (built and trained in a plain Python process,
timed from the first epoch's start to the last epoch's end), the loop under
``run`` (the same span, from epochs.csv's ``elapsed_s``), and under ``run --trace``.
Rounds interleave the conditions, so load on a shared machine hits them alike:
compare the ratios within a round, not the absolute figures.  It also times the
worker's per-epoch work step by step, and whole (``EpochSender.send``), in
microseconds (the best of 5 batches of 2,000), beside the path it replaced.
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
import json, os, sys, time
import psutil
from harness import records
from harness.worker import Channel, memory_now
from harness.worker.epochs import EpochSender
read, write = os.pipe()
os.set_blocking(read, False)
channel = Channel(write)
metrics = {"loss": 0.5, "accuracy": 0.9, "correct_prob": 0.8}
sender = EpochSender(channel, None, time.monotonic())
def drain():
    try:
        while os.read(read, 1 << 16):
            pass
    except BlockingIOError:
        pass
def status_read():  # the worker's reading before issue 16: parse /proc/self/status each epoch
    with open("/proc/self/status", "rb") as status:
        return [line for line in status if line.startswith((b"VmHWM:", b"VmRSS:"))]
def old_record_path():  # before issue 16: status read, EpochRecord built and checked, to_dict, send
    status_read()
    record = records.EpochRecord(1, 1, 1, None, sys.getallocatedblocks(), 0.1, 0.1, records.check_metrics(metrics))
    channel.send("epoch", **record.to_dict())
probes = {
    "rss and peak: pread of statm + getrusage (memory_now)": memory_now,
    "  (before: one read of /proc/self/status)": status_read,
    "py_blocks (sys.getallocatedblocks)": sys.getallocatedblocks,
    "metrics checked (records.check_metrics)": lambda: records.check_metrics(metrics),
    "record encoded and written to the pipe (Channel.send)": lambda: channel.send("epoch", epoch=1, metrics=metrics),
    "the worker's whole per-epoch work (EpochSender.send)": lambda: sender.send(metrics, 0.0, 0.001),
    "  (before: the same path as it was)": old_record_path,
}
out = {}
for name, probe in probes.items():
    best = float("inf")
    for _ in range(5):  # the best of 5 batches: the least disturbed by other work on the machine
        start = time.perf_counter()
        for _ in range(2000):
            probe()
        best = min(best, (time.perf_counter() - start) / 2000 * 1e6)
        drain()
    out[name] = best
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
    print("the worker's per-epoch work (microseconds per call, best of 5 batches, this machine, now):")
    for name, micros in probes.items():
        print(f"  {micros:7.1f} us  {name}")
    print(
        f"measured at {time.strftime('%Y-%m-%d %H:%M:%S')} with load average {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
