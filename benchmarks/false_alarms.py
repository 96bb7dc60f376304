"""False alarms: runs that must be flat (long numpy runs, the fixed variants, the zoo's traps and twins), judged.

    PYTHONPATH=. python benchmarks/false_alarms.py                 # 10 x 1000-epoch numpy, fixed variants, traps
    PYTHONPATH=. python benchmarks/false_alarms.py --numpy-runs 2 --numpy-epochs 200 --skip-zoo

One run at a time, each ``python -m harness run --quiet`` with the default
garbage-aware readings; prints one row per run (verdict, rate, onset, stop)
and how many were not ``flat``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.formatting import format_rate
from harness.storage import load_run
from tests.fixtures import zoo

FIXED_VARIANTS = {"numpy": 200, "lists": 12, "generators": 12}  # the pure-Python ones: ~1 s an epoch, 6 fitted


def judge(args: list[str], results: Path) -> dict[str, object]:
    """The growth of one run of ``python -m harness run ARGS``."""
    argv = [sys.executable, "-m", "harness", "run", *args, "--quiet", "--results", str(results)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"verdict": f"error {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return load_run(done.stdout.strip().splitlines()[-1]).meta["growth"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numpy-runs", type=int, default=10)
    parser.add_argument("--numpy-epochs", type=int, default=1000)
    parser.add_argument("--skip-zoo", action="store_true")
    args = parser.parse_args()
    numpy = ["--variant", "numpy", "--epochs", str(args.numpy_epochs)]
    jobs = [(f"numpy seed {s}, {args.numpy_epochs} epochs", [*numpy, "--seed", str(s)]) for s in range(args.numpy_runs)]
    jobs += [(f"{v} (fixed), {n} epochs", ["--variant", v, "--epochs", str(n)]) for v, n in FIXED_VARIANTS.items()]
    if not args.skip_zoo:
        for case, truth in zoo.TRUTH.items():
            if truth.kind == "flat":
                argv = ["--variant", f"{zoo.PATH}:{case}", "--epochs", str(truth.epochs)]  # flat cases: no --leak
                jobs.append((f"zoo {case}, {truth.epochs} epochs", argv))
    print("| run | verdict | growth/epoch | onset | stop |\n|---|---|---|---|---|")
    alarms = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in jobs:
            growth = judge(argv, Path(tmp))
            rate = growth.get("bytes_per_epoch")
            stop = (growth.get("stop") or {}).get("epoch")  # type: ignore[union-attr]
            print(
                f"| {name} | {growth['verdict']} | {format_rate(rate) if rate is not None else '-'} | "
                f"{growth.get('onset') or '-'} | {stop or '-'} |",
                flush=True,
            )
            alarms += growth["verdict"] != "flat"
    print(f"\nnot flat: {alarms} of {len(jobs)}")


if __name__ == "__main__":
    main()
