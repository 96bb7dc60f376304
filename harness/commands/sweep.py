"""Run a sweep: variants x leaks x seeds x options from a TOML spec (or a bundled one: seed), resumable.

Runs are performed one after another, each as `python -m harness run ... --quiet`
in its own process (and worker), with a progress line per run and an estimate of
the time left.  Run the same command again after an interruption: runs already
finished in the results directory (completed, or stopped by the memory cap) with
the same parameters are not repeated.  `--report DIR` writes the report of the
sweep's runs when it is done.

The bundled `seed` spec reproduces the seed: numpy CNN and fully-connected-only,
10 seeds, 500 epochs; and every variant with and without its leak.

Exit status: 0 when every run finished, 1 when any failed or timed out, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import sweep
from harness.records import FINISHED
from harness.storage import check_results_dir, load_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: the spec, where the runs go, and an optional report."""
    parser.add_argument(
        "spec",
        metavar="SPEC",
        help="a sweep spec file (.toml) or a bundled spec name (seed)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        metavar="DIR",
        help="where the run directories go (default: results/<spec name>)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="when done, write the report of the sweep's runs to DIR",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the planned runs and which are done; run nothing",
    )


def run(args: argparse.Namespace) -> int:
    """Perform the sweep (or list it with --dry-run) and return its exit status."""
    spec = sweep.load_spec(args.spec)
    results = args.results or Path("results") / spec.name
    for name in spec.unavailable:
        print(
            f"sweep: skipping optional variant {name}: it does not import here (`python -m harness list` says why)",
            file=sys.stderr,
        )
    if args.dry_run:
        finished = sweep.finished_runs(results)
        for index, planned in enumerate(spec.runs, start=1):
            done = sweep.already_done(planned, finished)
            print(f"[{index}/{len(spec.runs)}] {planned.describe()}: {'done, ' + done.name if done else 'to run'}")
        return 0
    check_results_dir(results)
    if args.report is not None:
        check_results_dir(args.report, option="--report", what="report directory")
    try:
        outcomes = sweep.run_sweep(spec, results)
    except KeyboardInterrupt:
        print(
            f"sweep interrupted; run the same command again to resume (finished runs are kept in {results})",
            file=sys.stderr,
        )
        return 130
    failed = [o for o in outcomes if o.status not in (*FINISHED, "skipped")]
    stopped_early = len(outcomes) < len(spec.runs)
    print(f"sweep {spec.name}: {len(outcomes) - len(failed)} of {len(spec.runs)} runs finished, in {results}")
    for outcome in failed:
        print(
            f"not finished: {outcome.run.describe()}: {outcome.status} {outcome.message}".rstrip(),
            file=sys.stderr,
        )
    if args.report is not None:
        from harness.report.document import write_report  # matplotlib: only when a report is asked for

        files = write_report(load_runs(sweep.sweep_run_dirs(outcomes)), args.report)
        print(files.html)
        print(files.markdown)
    return 1 if failed or stopped_early else 0
