"""Run a sweep: variants x leaks x seeds x options from a TOML spec (or a bundled one: seed), resumable.

Each run is `python -m harness run ... --quiet` in its own process (and
worker), with a progress line per run and an estimate of the time left: one at
a time, or up to N at once with `--jobs N`, or on a Dask cluster with
`--scheduler tcp://HOST:PORT` (`local`: one started here; `pip install
'leakbench[dask]'`), whose run directories come back here.  A run starts only
while the memory caps of the runs going fit the memory budget (default: half
the available memory); a run without a memory_cap gets its share of it.  Runs
of a `timing = true` group have the machine to themselves.  Run the same command
again after an interruption: runs already finished in the results directory
(completed, or stopped by the memory cap) with the same parameters are not
repeated, and two sweeps into one directory never perform a run twice.
`--report DIR` writes the report of the sweep's runs when it is done.

The bundled `seed` spec reproduces the seed: numpy CNN and fully-connected-only,
10 seeds, 500 epochs; and every variant with and without its leak.

Exit status: 0 when every run finished, 1 when any failed or timed out, 2 for
bad input (nothing written), 130 when interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from harness import sweep
from harness.errors import UsageError
from harness.records import FINISHED
from harness.storage import check_results_dir, load_runs

MAX_JOBS = 256


def jobs_option(text: str) -> int:
    """``--jobs N``: 1 to MAX_JOBS runs at once."""
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if not 1 <= jobs <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"expected a whole number of runs at once from 1 to {MAX_JOBS}, got {text!r}")
    return jobs


def scheduler_option(text: str) -> str:
    """``--scheduler ADDRESS``: ``local`` or ``tcp://HOST:PORT``, checked before anything else (even --dry-run)."""
    from harness.sweep import cluster  # no Dask import: the address is only read

    try:
        return cluster.check_address(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def budget_option(text: str) -> int:
    """``--memory-budget SIZE``: at least 1 MiB."""
    try:
        return sweep.parse_budget(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
        "--jobs",
        type=jobs_option,
        default=1,
        metavar="N",
        help="runs at once on this machine (default 1); with --scheduler local, the local cluster's run slots",
    )
    parser.add_argument(
        "--scheduler",
        type=scheduler_option,
        metavar="ADDRESS",
        help="perform the runs on a Dask cluster: tcp://HOST:PORT of its scheduler, or local to start one here "
        "(needs pip install 'leakbench[dask]')",
    )
    parser.add_argument(
        "--memory-budget",
        type=budget_option,
        metavar="SIZE",
        help="the memory the caps of the runs going at once must fit in (default: half the available memory); "
        "on a cluster, each worker's MiB resource",
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
    budget = args.memory_budget or sweep.default_budget()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends a sweep as Ctrl-C does: 130
    try:
        backend = _backend(args, spec, results, budget)
        outcomes = sweep.run_sweep(spec, results, backend=backend)
    except KeyboardInterrupt:
        print(
            f"sweep interrupted; run the same command again to resume (finished runs are kept in {results})",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
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


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM: stop as on Ctrl-C (each run in flight is stopped and recorded as interrupted)."""
    raise KeyboardInterrupt


def _backend(args: argparse.Namespace, spec: sweep.Spec, results: Path, budget: int) -> Any:
    """Threads on this machine, or a Dask cluster (UsageError, with nothing written, when it cannot be had)."""
    if args.scheduler is None:
        return sweep.LocalPool(spec.name, results, args.jobs, budget, strict=args.memory_budget is not None)
    from harness.sweep import cluster  # Dask is optional: loaded only when asked for

    address = args.scheduler
    if address != "local" and (args.jobs != 1 or args.memory_budget is not None):
        raise UsageError(
            "--jobs and --memory-budget are for this machine: a cluster's workers declare their run slots and "
            'memory budget (dask worker ... --resources "slots=N,MiB=M"; see the README)'
        )
    return cluster.DaskPool(address, spec.name, results, args.jobs, budget)
