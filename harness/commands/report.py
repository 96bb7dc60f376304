"""Write a report of recorded runs: report.html (self-contained), report.md and the PNG figures.

Give run directories, results directories holding runs, or both.  The report
sets each variant's leaky runs against its fixed ones (resident memory per
epoch, memory cap marked), shows the timed samples of one run, a table per run
(verdict, growth per epoch with its interval, peak RSS, speed, final metrics),
the seed's table with our numbers beside the seed's, the seed's three accuracy
plots, and the allocation sites that grew most in traced runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import UsageError
from harness.storage import check_results_dir, load_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: what to report on and where to write it."""
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="RUN_DIR_OR_RESULTS_DIR",
        help="run directories, or directories holding run directories (e.g. results/seed)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="where to write report.html, report.md and the figures (created if missing)",
    )
    parser.add_argument(
        "--samples-run",
        metavar="RUN_ID",
        help="the run whose timed memory samples are plotted (default: the first leaky run)",
    )
    parser.add_argument(
        "--seed-variant",
        metavar="NAME",
        help="the variant whose leak-free runs fill the seed's table and plots (default: numpy)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the runs, write the report, print the paths written."""
    # Imported here: matplotlib takes about a second to import, and only this command draws.
    from harness.report.document import write_report

    check_results_dir(args.out, option="--out", what="report directory")
    skipped: list[str] = []
    runs = load_runs(args.paths, skipped)
    for reason in skipped:
        print(f"leakbench: note: left out: {reason}", file=sys.stderr)
    variants = sorted({str(run.meta.get("variant")) for run in runs})
    if args.seed_variant is not None and args.seed_variant not in variants:
        raise UsageError(
            f"--seed-variant {args.seed_variant!r}: no run of it is reported (variants: {', '.join(variants)})"
        )
    files = write_report(runs, args.out, samples_run=args.samples_run, seed_variant=args.seed_variant or "numpy")
    print(files.html)
    print(files.markdown)
    return 0
