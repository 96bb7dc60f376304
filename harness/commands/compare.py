"""Compare a baseline with a candidate (two runs, or two sets of runs): which changes exceed the noise.

BASELINE and CANDIDATE are each a run directory or a directory of runs (a set).
Runs are grouped by variant, model and leak and matching groups are compared
(with one group on each side the two are compared whatever they are).  For each
group: growth per epoch, peak RSS, epochs per second and the final metrics, the
change, the noise it is judged against, and whether it is beyond the noise.

Noise: with repeated runs on a side, twice the standard error of the difference
of the means (a side with one run borrows the other side's spread); with one run
on each side, the two growth trends' 95% intervals for growth, an assumed 5%
(peak RSS) or 10% (epochs/s) otherwise, and exact equality for the metrics of one
seed.  Changes under the growth analysis's leak threshold per epoch, 1 MiB of peak RSS or
5% of speed never count.

Exit status: 0; with --fail-on-regression, 1 when any change is worse beyond the noise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.report import compare
from harness.report.run_table import run_table
from harness.report.writers import markdown_table, text_table
from harness.storage import load_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: the two sides and the regression switch."""
    parser.add_argument(
        "baseline",
        type=Path,
        metavar="BASELINE",
        help="a run directory or a directory of runs",
    )
    parser.add_argument(
        "candidate",
        type=Path,
        metavar="CANDIDATE",
        help="a run directory or a directory of runs",
    )
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when the candidate is worse than the baseline beyond the noise",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")


def run(args: argparse.Namespace) -> int:
    """Print the comparison; the exit code says whether it regressed (with --fail-on-regression)."""
    skipped: list[str] = []
    baseline = run_table(load_runs([args.baseline], skipped))
    candidate = run_table(load_runs([args.candidate], skipped))
    for reason in skipped:
        print(f"leakbench: note: left out: {reason}", file=sys.stderr)
    changes = compare.compare_tables(baseline, candidate)
    for note in compare.caveats(baseline, candidate):
        print(f"note: {note}")
    if not changes:
        print("nothing to compare: no group (variant, model, leak) is on both sides")
        return 1 if args.fail_on_regression else 0
    table = compare.comparison_table(changes)
    for group, rows in table.groupby("group", sort=False):
        rows = rows.drop(columns="group")
        print(f"\n{group}\n" + (markdown_table(rows) if args.markdown else text_table(rows)))
    print("\n" + compare.NOISE_LEGEND)
    worse = compare.regressions(changes)
    better = [c for c in changes if c.beyond_noise and not c.worse]
    print(
        f"\n{len(worse)} worse and {len(better)} better beyond the noise;"
        f" {len(changes) - len(worse) - len(better)} within it."
    )
    for change in worse:
        print(f"regression: {change.group}: {change.metric.name} {compare.describe(change)}")
    return 1 if args.fail_on_regression and worse else 0
