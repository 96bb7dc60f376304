"""A script's verdict against the truth (a script, not a test): the seed's leak as a script, and a timed leak.

    python benchmarks/bench_scripts.py seed [--epochs 12] [--repeat 2]
    python benchmarks/bench_scripts.py window [--rate 1] [--seconds 12] [--window 1] [--repeat 3]

``seed``: the seed's pre-fix loop as a class (``run --variant lists --leak
recursion``) and as a plain script that marks its epochs
(``run --script examples/seed_script.py -- --recursion``), interleaved in one
session, REPEAT times each: verdict, growth per epoch with its 95% interval,
and the script's slope over the class's.

``window``: an unmarked script keeping RATE MiB a second
(``tests/fixtures/scripts/steady_leak.py``), judged per window of WINDOW
seconds: verdict, growth per window, and its ratio to the truth
(RATE x WINDOW MiB per window).

Each run is ``python -m harness run ... --quiet`` in a subprocess, as a user
runs it, into a temporary results directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.formatting import format_rate_ci
from harness.storage import load_run

ROOT = Path(__file__).resolve().parent.parent
SEED_SCRIPT = ROOT / "examples" / "seed_script.py"
STEADY = ROOT / "tests" / "fixtures" / "scripts" / "steady_leak.py"
MIB = 2**20


def record(results: Path, *args: str) -> dict:
    """Run ``python -m harness run --quiet --results RESULTS ARGS``; the growth dict of the run it recorded."""
    argv = [sys.executable, "-m", "harness", "run", "--quiet", "--results", str(results), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[3:])}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    return load_run(done.stdout.strip().splitlines()[-1]).meta["growth"]


def line(name: str, growth: dict) -> str:
    """``"class   leak, +23.4 MiB/epoch (23.4-23.5 MiB) over 12 epochs"``."""
    rate, ci = format_rate_ci(growth["bytes_per_epoch"], growth["ci_low"], growth["ci_high"], per=growth["per"])
    return (
        f"{name:8s} {growth['verdict']:12s} {rate:>18s} (95% CI {ci}) over {growth['n_epochs_used']} {growth['per']}s"
    )


def seed(args: argparse.Namespace, results: Path) -> None:
    """The class and the script, interleaved."""
    epochs = str(args.epochs)
    class_args = ["--variant", "lists", "--leak", "recursion", "--epochs", epochs]
    script_args = ["--script", str(SEED_SCRIPT), "--", "--recursion", "--epochs", epochs]
    for index in range(1, args.repeat + 1):
        loop = record(results, *class_args)
        script = record(results, *script_args)
        print(f"round {index}")
        print("  " + line("class", loop))
        print("  " + line("script", script))
        print(f"  script / class slope: {script['bytes_per_epoch'] / loop['bytes_per_epoch']:.4f}")


def window(args: argparse.Namespace, results: Path) -> None:
    """The steady leak, judged per window."""
    truth = args.rate * args.window * MIB
    for index in range(1, args.repeat + 1):
        growth = record(
            results,
            "--window",
            f"{args.window:g}",
            "--script",
            str(STEADY),
            "--",
            f"{args.rate:g}",
            f"{args.seconds:g}",
        )
        print(f"round {index}: " + line("script", growth) + f"; slope / truth {growth['bytes_per_epoch'] / truth:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen comparison and print one block per round."""
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_scripts.py", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["seed", "window"])
    parser.add_argument("--epochs", type=int, default=12, help="seed: epochs of each run")
    parser.add_argument("--rate", type=float, default=1.0, help="window: MiB kept per second")
    parser.add_argument("--seconds", type=float, default=12.0, help="window: how long the script runs")
    parser.add_argument("--window", type=float, default=1.0, help="window: seconds per window")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scripts-") as tmp:
        (seed if args.what == "seed" else window)(args, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
