"""What recording costs: a fast loop's epochs per second inside ``python -m harness run`` and bare.

    python benchmarks/bench_recording.py                      # numpy, 2000 epochs, 5 rounds
    python benchmarks/bench_recording.py --variant lists --epochs 5 --repeats 3

Each round runs, one after the other in fresh processes with the same environment
(BLAS on one thread): the loop bare (built and trained in a plain Python process,
timed from the first epoch's start to the last epoch's end), the loop under
``run`` (the same span, from epochs.csv's ``elapsed_s``), and under ``run --trace``.
Rounds interleave the conditions, so load on a shared machine hits them alike:
compare the ratios within a round, not the absolute figures.  Even so, on a host
whose speed drifts by tens of percent within seconds (this project's 2-vCPU
machine) the ratios of jobs run one after the other scatter by more than what
recording costs: ``python -m harness bench`` measures the overhead in turns
(:mod:`harness.bench.turns`), the figure to trust; this script's per-step table
is what says where the cost goes.  "between epochs"
is the median time from one epoch's end to the next one's start, from each
condition's own timestamps: the recording's cost per epoch where it is paid.

It also times the worker's per-epoch work step by step, and whole
(``EpochSender.send``), in microseconds, where it runs: right after an epoch of
the loop (each step after every k-th epoch, in turn), when the loop has pushed
the interpreter and the kernel out of the CPU's caches and every step costs
several times what it does in a tight loop of its own; beside the JSON-line
path that every epoch took before epoch frames.
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
from collections.abc import Callable
from pathlib import Path

from harness.interface import RunConfig
from harness.storage import load_run
from harness.worker.protocol import EPOCH, FRAME, MessageReader

BARE = """
import json, sys, time
from harness.bench.child import time_epochs
from harness.interface import RunConfig
from harness.loops import load_loop_class
epochs = int(sys.argv[2])
loop = load_loop_class(sys.argv[1])(RunConfig(epochs=epochs))
epoch_s, ends = time_epochs(loop, epochs, clock=time.monotonic)  # monotonic: run's records use it too
print(json.dumps({"epoch_s": epoch_s, "elapsed_s": ends}))
"""

PROBES = """
import json, os, resource, statistics, subprocess, sys, time
from harness.interface import RunConfig
from harness.loops import load_loop_class
from harness.worker import Channel, protocol
from harness.worker.epochs import EpochSender
from harness.worker.gc_readings import GcReadings
from harness.worker.process import memory_now, statm_reader
read, write = os.pipe()
# Another process drains the pipe, as the parent does (it reads every 50 ms, so most writes wake nobody).
DRAIN = "import os, time\\nwhile os.read(0, 1 << 20): time.sleep(0.05)"
drainer = subprocess.Popen([sys.executable, "-c", DRAIN], stdin=read)
os.close(read)
channel = Channel(write)
epochs = int(sys.argv[2])
loop = load_loop_class(sys.argv[1])(RunConfig(epochs=epochs))
metrics = loop.train_epoch(1)
sender = EpochSender(channel, None, time.monotonic(), GcReadings())
sender.send(metrics, 0.0, 0.001)  # the first epoch: a JSON line; the later ones are frames
frame, values = protocol.epoch_frame(len(metrics or {})), [float(v) for v in (metrics or {}).values()]
statm = statm_reader()
probes = {
    "rss: pread of the kept-open /proc/self/statm": statm,
    "peak: getrusage": lambda: resource.getrusage(resource.RUSAGE_SELF),
    "py_blocks: sys.getallocatedblocks (at most every 10 ms)": sys.getallocatedblocks,
    "gc: the auto policy's check (GcReadings.before_reading)": lambda: sender.readings.before_reading(2, 0.001),
    "metrics as floats in epoch 1's order (EpochSender._plain_values)": lambda: sender._plain_values(metrics),
    "epoch frame packed": lambda: frame.pack(1, len(values), 2, 1, 1, 1, 0.1, 0.1, *values),
    "the worker's whole per-epoch work (EpochSender.send)": lambda: sender.send(metrics, 0.0, 0.001),
    "  (before: the JSON-line path, every epoch)": lambda: sender._send_checked(metrics, 0.0, 0.001, *memory_now()),
}
names = list(probes)
spent = {name: [] for name in names}
clock = time.perf_counter_ns
for epoch in range(2, epochs + 1):
    metrics = loop.train_epoch(epoch)
    name = names[epoch % len(names)]
    start = clock()
    probes[name]()
    spent[name].append(clock() - start)
os.close(write)
drainer.wait()
print(json.dumps({name: statistics.median(times) / 1e3 for name, times in spent.items()}))
"""


def environment() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    return env


Times = tuple[list[float], list[float]]  # each epoch's train_epoch time, and its end since the first epoch's start


def bare(variant: str, epochs: int, _: Path) -> Times:
    """The loop in a plain process: no worker, no parent."""
    done = subprocess.run(
        [sys.executable, "-c", BARE, variant, str(epochs)],
        capture_output=True,
        text=True,
        check=True,
        env=environment(),
    )
    times = json.loads(done.stdout)
    return times["epoch_s"], times["elapsed_s"]


def worker_alone(variant: str, epochs: int, _: Path) -> Times:
    """The real worker (keeper and trainer, every record built and sent) with no parent: a cat drains the pipe."""
    read, write = os.pipe()
    with tempfile.TemporaryFile() as records:  # cat writes to a file: a pipe back to us would fill and block it
        drain = subprocess.Popen(["cat"], stdin=read, stdout=records)
        os.close(read)
        job = {"variant": variant, "config": RunConfig(epochs=epochs).to_dict(), "trace_path": None}
        subprocess.run(
            [sys.executable, "-m", "harness.worker", "--fd", str(write), "--job", json.dumps(job)],
            pass_fds=(write,),
            env=environment(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        os.close(write)
        drain.wait()
        records.seek(0)
        reader = MessageReader()
        messages = reader.feed(records.read())
        rows = [
            fields if kind == EPOCH else reader.fields(fields) for kind, fields in messages if kind in (EPOCH, FRAME)
        ]
    return [row["epoch_s"] for row in rows], [row["elapsed_s"] for row in rows]


def recorded(variant: str, epochs: int, results: Path, *extra: str) -> Times:
    """The loop under ``python -m harness run``, from its epochs.csv."""
    command = [sys.executable, "-m", "harness", "run", "--variant", variant, "--epochs", str(epochs), "--quiet"]
    done = subprocess.run(
        [*command, "--results", str(results), *extra], capture_output=True, text=True, check=True, env=environment()
    )
    epochs_table = load_run(done.stdout.strip().splitlines()[-1]).epochs
    return list(map(float, epochs_table["epoch_s"])), list(map(float, epochs_table["elapsed_s"]))


CONDITIONS: dict[str, Callable[[str, int, Path], Times]] = {
    "bare": bare,
    "worker alone (no parent)": worker_alone,
    "run, parent sampling 1/min": lambda v, e, r: recorded(v, e, r, "--sample-interval", "60"),
    "run": recorded,
    "run --trace": lambda v, e, r: recorded(v, e, r, "--trace"),
}


def rates(times: Times, warmup: int) -> tuple[float, float, float]:
    """After the warm-up: epochs/s over the wall time, epochs/s of train_epoch alone, median us between epochs."""
    epoch_s, ends = times
    span = (len(ends) - warmup) / (ends[-1] - ends[warmup - 1])
    # An epoch started at its end less its train_epoch time: the gap is what ran between it and the one before.
    gaps = [end - took - before for end, took, before in zip(ends[warmup:], epoch_s[warmup:], ends[warmup - 1 :])]
    return span, len(epoch_s[warmup:]) / sum(epoch_s[warmup:]), statistics.median(gaps) * 1e6


def main() -> None:
    """Run the rounds, print each condition's rates and ratios to bare, then the worker's per-epoch work."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="numpy")
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100, help="epochs left out at the start of each measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-trace", action="store_true", help="leave run --trace out (it is slow)")
    args = parser.parse_args()
    conditions = {name: f for name, f in CONDITIONS.items() if not (args.no_trace and "trace" in name)}
    span: dict[str, list[float]] = {name: [] for name in conditions}
    train: dict[str, list[float]] = {name: [] for name in conditions}
    between: dict[str, list[float]] = {name: [] for name in conditions}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            for name, measure in conditions.items():
                wall, alone, gap = rates(measure(args.variant, args.epochs, Path(tmp)), args.warmup)
                span[name].append(wall)
                train[name].append(alone)
                between[name].append(gap)
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in span.items()), file=sys.stderr)
    print(
        f"{args.variant}, {args.epochs} epochs ({args.warmup} left out), {args.repeats} rounds interleaved;"
        " medians; ratio = median of per-round ratios to bare"
    )
    print(
        f"  {'condition':<26} {'wall epochs/s':>13} {'ratio':>6}   {'train_epoch alone':>17} {'ratio':>6}"
        "   us/epoch   us between epochs"
    )
    for name in conditions:
        wall = [value / base for value, base in zip(span[name], span["bare"])]
        alone = [value / base for value, base in zip(train[name], train["bare"])]
        extra_us = (1 / statistics.median(span[name]) - 1 / statistics.median(span["bare"])) * 1e6
        print(
            f"  {name:<26} {statistics.median(span[name]):13.1f} {statistics.median(wall):6.3f}"
            f"   {statistics.median(train[name]):17.1f} {statistics.median(alone):6.3f}   {extra_us:+8.1f}"
            f"   {statistics.median(between[name]):17.1f}"
        )
    probe_epochs = str(max(args.epochs, 4000))
    probes = json.loads(
        subprocess.run(
            [sys.executable, "-c", PROBES, args.variant, probe_epochs],
            capture_output=True,
            text=True,
            check=True,
            env=environment(),
        ).stdout
    )
    print(f"the worker's per-epoch work right after an epoch of {args.variant} (median us, this machine, now):")
    for name, micros in probes.items():
        print(f"  {micros:7.1f} us  {name}")
    print(
        f"measured at {time.strftime('%Y-%m-%d %H:%M:%S')} with load average {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
