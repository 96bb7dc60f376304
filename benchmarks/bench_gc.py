"""What the garbage-aware readings cost: epochs/s of variants under each --gc-collect policy, interleaved.

    python benchmarks/bench_gc.py                                    # numpy, lists, generators; 3 rounds
    python benchmarks/bench_gc.py --variants numpy --epochs 2000 --repeat 5

Each measurement is one ``python -m harness run --quiet`` in a fresh process,
one at a time; the policies are interleaved within each round (never, auto,
always, then the next round), so a change in the machine's load hits them all
alike.  Epochs/s is epochs over the training time the worker recorded
(``elapsed_s`` of the last epoch, which includes the collections), and the
collector's own share of it comes from meta.json's ``gc``: on a loaded machine
that share is the figure to trust, the wall-clock ratio has the load's noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.storage import load_run

EPOCHS = {"numpy": 1500, "lists": 4, "generators": 4}
POLICIES = ("never", "auto", "always")


def measure(variant: str, epochs: int, policy: str, results: Path) -> tuple[float, float, int]:
    """(epochs/s of training, the collector's share of training time, full collections) of one run."""
    argv = [sys.executable, "-m", "harness", "run", "--variant", variant, "--epochs", str(epochs)]
    argv += ["--gc-collect", policy, "--quiet", "--results", str(results)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    run = load_run(done.stdout.strip().splitlines()[-1])
    gc = run.meta["gc"]
    return epochs / float(run.epochs["elapsed_s"].iloc[-1]), gc["share_of_training"], gc["collections"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(EPOCHS))
    parser.add_argument("--epochs", type=int, help="epochs per run (default: per variant, about 2-10 s a run)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for variant in args.variants:
                for policy in POLICIES:
                    epochs = args.epochs or EPOCHS.get(variant, 20)
                    rows.setdefault((variant, policy), []).append(measure(variant, epochs, policy, Path(tmp)))
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; median of {args.repeat} runs each\n")
    print("| variant | " + " | ".join(f"{p} epochs/s" for p in POLICIES) + " | auto/never | gc share auto / always |")
    print("|---|" + "---|" * (len(POLICIES) + 2))
    for variant in args.variants:
        speed = {p: statistics.median(r[0] for r in rows[(variant, p)]) for p in POLICIES}
        share = {p: statistics.median(r[1] for r in rows[(variant, p)]) for p in POLICIES}
        cells = " | ".join(
            f"{speed[p]:.3g} ({min(r[0] for r in rows[(variant, p)]):.3g}-{max(r[0] for r in rows[(variant, p)]):.3g})"
            for p in POLICIES
        )
        print(
            f"| {variant} | {cells} | {speed['auto'] / speed['never']:.3f} | "
            f"{share['auto']:.2%} / {share['always']:.2%} |"
        )


if __name__ == "__main__":
    main()
