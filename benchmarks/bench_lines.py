"""What ``run --lines`` costs: epochs per second with and without line profiling, interleaved in one run.

    python benchmarks/bench_lines.py                  # numpy, lists, a user's loop; 5 rounds
    python benchmarks/bench_lines.py --rounds 5 --loops numpy user

Each round runs, for every loop, one after the other in fresh processes with
BLAS on one thread: ``run`` without --lines, ``run --lines`` (train_epoch alone,
the default), ``run --lines TARGET`` with the functions train_epoch calls, and
for ``lists`` also a hot inner function (what not to profile); then, as the
reference the design is measured against, the loop bare and under
memory_profiler's own ``LineProfiler`` on train_epoch (in a plain process,
since ``run`` does not use it).  Epochs per second are over the epochs after
the first (time in ``train_epoch``, from epochs.csv); the slowdown of a
condition is the median of its per-round ratios to the round's run without it,
so load on a shared machine hits both alike.
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
from dataclasses import dataclass, field
from pathlib import Path

from harness.storage import load_run

ROOT = Path(__file__).resolve().parent.parent
USER_LOOP = str(ROOT / "examples" / "native_leak.py")


@dataclass(frozen=True)
class Loop:
    """A loop to time, its epochs, and what --lines is given besides train_epoch."""

    name: str
    variant: str
    epochs: int
    targets: tuple[str, ...]
    hot: tuple[str, ...] = ()  # a hot inner function: the case the README warns about


LOOPS = {
    "numpy": Loop(
        "numpy", "numpy", 1500, ("variants.numpy.net:BatchNet.forward", "variants.numpy.net:BatchNet.backward")
    ),
    "lists": Loop(
        "lists", "lists", 4, ("variants.lists.model:ListsCNN._learn_batch",), ("variants.lists.algebra:relu",)
    ),
    "user": Loop("user", f"{USER_LOOP}:NativeLeakLoop", 600, (f"{USER_LOOP}:helper",)),
}

BARE = """
import json, sys, time
from harness.interface import RunConfig
from harness.loops import load_loop_class
variant, epochs, profiler = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cls = load_loop_class(variant)
loop = cls(RunConfig(epochs=epochs))
step = loop.train_epoch
if profiler == "memory_profiler":
    import memory_profiler
    profile = memory_profiler.LineProfiler()
    step = profile(loop.train_epoch)
times = []
for epoch in range(1, epochs + 1):
    started = time.perf_counter()
    step(epoch)
    times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


def environment() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[name] = "1"
    return env


def rate(seconds: list[float]) -> float:
    """Epochs per second over the epochs after the first."""
    rest = seconds[1:] or seconds
    return len(rest) / sum(rest)


def recorded(loop: Loop, results: Path, lines: tuple[str, ...] | None) -> tuple[float, float]:
    """(epochs/s, RSS readings per epoch) of the loop under ``run``, with --lines when ``lines`` is not None."""
    extra = [] if lines is None else ["--lines", *lines]
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--variant", loop.variant, "--epochs", str(loop.epochs), "--quiet",
         "--results", str(results), *extra],
        capture_output=True, text=True, check=True, env=environment(), cwd=ROOT,
    )  # fmt: skip
    run = load_run(done.stdout.strip().splitlines()[-1])
    readings = run.lines["readings"] / run.lines["epochs"] if run.lines and run.lines["epochs"] else 0.0
    return rate([float(s) for s in run.epochs["epoch_s"]]), readings


def bare(loop: Loop, profiler: str) -> float:
    """Epochs per second of the loop in a plain process, under memory_profiler's LineProfiler or not."""
    done = subprocess.run(
        [sys.executable, "-c", BARE, loop.variant, str(loop.epochs), profiler],
        capture_output=True, text=True, check=True, env=environment(), cwd=ROOT,
    )  # fmt: skip
    return rate(json.loads(done.stdout))


@dataclass
class Series:
    """One condition's epochs/s per round, its ratio to its baseline per round, and RSS readings per epoch."""

    rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    readings: list[float] = field(default_factory=list)


def main() -> None:
    """Run the rounds, then print one table row per loop and condition."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", nargs="+", choices=list(LOOPS), default=list(LOOPS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-memory-profiler", action="store_true", help="skip the memory_profiler reference")
    args = parser.parse_args()
    table: dict[tuple[str, str], Series] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name in args.loops:
                loop = LOOPS[name]
                base, _ = recorded(loop, Path(tmp), None)
                table.setdefault((name, "run"), Series()).rates.append(base)
                conditions = {"run --lines": (), "run --lines TARGET": loop.targets}
                if loop.hot:
                    conditions["run --lines HOT"] = loop.hot
                for label, targets in conditions.items():
                    speed, readings = recorded(loop, Path(tmp), targets)
                    series = table.setdefault((name, label), Series())
                    series.rates.append(speed)
                    series.ratios.append(base / speed)
                    series.readings.append(readings)
                if not args.no_memory_profiler:
                    plain, profiled = bare(loop, "none"), bare(loop, "memory_profiler")
                    table.setdefault((name, "bare"), Series()).rates.append(plain)
                    series = table.setdefault((name, "bare, memory_profiler LineProfiler"), Series())
                    series.rates.append(profiled)
                    series.ratios.append(plain / profiled)
                print(f"round {round_ + 1}: {name} done", file=sys.stderr)
    print("| loop | condition | epochs/s (median) | slowdown (median; rounds) | RSS readings/epoch |")
    print("|---|---|---|---|---|")
    for (name, label), series in table.items():
        slowdown = (
            f"{statistics.median(series.ratios):.2f}x ({', '.join(f'{r:.2f}' for r in series.ratios)})"
            if series.ratios
            else "1x"
        )
        readings = f"{statistics.median(series.readings):,.0f}" if series.readings else ""
        print(f"| {name} | {label} | {statistics.median(series.rates):,.2f} | {slowdown} | {readings} |")
    for name in args.loops:
        loop = LOOPS[name]
        print(f"{name}: {loop.variant}, {loop.epochs} epochs; TARGET {' '.join(loop.targets)}"
              + (f"; HOT {' '.join(loop.hot)}" if loop.hot else ""))  # fmt: skip
    print(
        f"{args.rounds} rounds, measured at {time.strftime('%Y-%m-%d %H:%M:%S')} with load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
