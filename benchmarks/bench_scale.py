"""A million epochs: the parent stays flat, the records grow linearly, and every reader stays fast.

    python benchmarks/bench_scale.py                         # 1,000,000 epochs of a 0.1 ms loop
    python benchmarks/bench_scale.py --epochs 100000 --epoch-ms 0.1 --keep /tmp/scale

It records a loop whose epoch spins for --epoch-ms (no allocation: a flat run)
with ``python -m harness run``, and every --every seconds it reads, from outside,
the ``run`` process's RSS (the parent: supervision, sampling, CSV writing) and
the size of every file in the run directory.  Then it times ``explain``,
``check``, ``report`` and ``compare`` on the finished run, each as a user would
run it (a fresh ``python -m harness`` process, wall time).

It prints the parent's RSS at 10 %, 50 % and 100 % of the run, each file's
bytes per epoch at the same points (linear growth keeps them equal), and the
commands' times.  Absolute times depend on the machine's load: the load
average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

LOOP = """
import time


class SpinLoop:
    \"\"\"Each epoch spins for a fixed time and allocates nothing: a flat run.\"\"\"

    def __init__(self, config):
        self.seconds = {seconds!r}

    def train_epoch(self, epoch):
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return {{"loss": 1.0 / epoch}}
"""


def harness(*args: str | Path, timeout: float = 3600) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``python -m harness ARGS``; (the finished process, its wall time in seconds)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )
    return done, time.monotonic() - started


def record(loop: Path, epochs: int, results: Path, every: float) -> tuple[Path, list[tuple[int, int, dict[str, int]]]]:
    """Record the run; (its directory, [(last epoch, parent RSS, {file: bytes})] read every ``every`` s)."""
    command = [sys.executable, "-m", "harness", "run", "--variant", f"{loop}:SpinLoop", "--epochs", str(epochs)]
    command += ["--results", str(results), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(process.pid)
    readings: list[tuple[int, int, dict[str, int]]] = []
    while process.poll() is None:
        time.sleep(every)
        run_dirs = [path for path in results.iterdir() if path.is_dir()]
        try:
            rss = parent.memory_info().rss
        except psutil.Error:
            break
        if not run_dirs or rss == 0:  # rss 0: the parent has exited and not been reaped yet
            continue
        sizes = {path.name: path.stat().st_size for path in run_dirs[0].iterdir() if path.is_file()}
        readings.append((_last_epoch(run_dirs[0] / "epochs.csv"), rss, sizes))
    out, err = process.communicate()
    if process.returncode != 0:
        sys.exit(f"the run failed ({process.returncode}): {err.strip()[-500:]}")
    return Path(out.strip().splitlines()[-1]), readings


def _last_epoch(epochs_csv: Path) -> int:
    """The epoch of the last whole row of epochs.csv (0 before the first)."""
    try:
        with epochs_csv.open("rb") as file:
            file.seek(max(0, epochs_csv.stat().st_size - 4096))
            lines = file.read().splitlines()
    except OSError:
        return 0
    for line in reversed(lines[:-1] or lines):
        head = line.split(b",", 1)[0]
        if head.isdigit():
            return int(head)
    return 0


def main() -> None:
    """Record the long run, then time the commands on it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1_000_000)
    parser.add_argument("--epoch-ms", type=float, default=0.1)
    parser.add_argument("--every", type=float, default=1.0, help="seconds between readings of the parent")
    parser.add_argument("--keep", type=Path, help="record into this directory and keep it (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = args.keep or Path(tmp) / "results"
        results.mkdir(parents=True, exist_ok=True)
        loop = Path(tmp) / "spin_loop.py"
        loop.write_text(LOOP.format(seconds=args.epoch_ms / 1000))
        started = time.monotonic()
        run_dir, readings = record(loop, args.epochs, results, args.every)
        print(f"{args.epochs:,} epochs of a {args.epoch_ms:g} ms loop recorded in {time.monotonic() - started:.0f} s")
        print(f"run directory: {run_dir}")
        print("  progress   parent RSS   bytes per epoch recorded so far (CSV files; others in bytes)")
        for share in (0.1, 0.5, 1.0):
            epoch, rss, sizes = min(readings, key=lambda r: abs(r[0] - share * args.epochs))
            per_epoch = ", ".join(
                f"{name} {size / max(epoch, 1):.1f}" if name.endswith(".csv") else f"{name} {size:,} B (fixed)"
                for name, size in sorted(sizes.items())
            )
            print(f"  epoch {epoch:>9,}  {rss / 2**20:7.1f} MiB   {per_epoch}")
        final = {path.name: path.stat().st_size for path in run_dir.iterdir() if path.is_file()}
        print("  final files: " + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sorted(final.items())))
        print("command on the finished run (wall time, fresh process):")
        report_dir = Path(tmp) / "report"
        for name, command in (
            ("explain", ("explain", run_dir)),
            ("check", ("check", run_dir, "--max-growth", "64KiB")),
            ("report", ("report", results, "--out", report_dir)),
            ("compare", ("compare", run_dir, run_dir)),
        ):
            done, seconds = harness(*command)
            status = "ok" if done.returncode in (0, 1) else f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
            print(f"  {name:<8} {seconds:6.1f} s  ({status})")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
