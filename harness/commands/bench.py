"""Time the variants' training loops against each other and against this machine's floating-point limit.

Each measurement is a fresh child process with its BLAS/OpenMP threads pinned
in its environment (--threads, default 1; torch also gets its `threads`
option).  Rounds are interleaved (A B A B ...) so drift on a shared machine hits
every variant alike.  A measurement trains warm-up epochs, then the measured
ones; its epochs/s is the measured epochs over their own train_epoch times.

The table shows, per variant: warm-up+measured epochs, the median epochs/s
over --repeat rounds with its min-max, the ratio to the baseline, GFLOP/s
(FLOPs per epoch, counted from the layer shapes, times epochs/s) and the share
of the limit: a large float64 matrix product's rate, measured in a child with
the same threads.  With numpy benchmarked, it also compares numpy under the
real `run` (recording every epoch, RSS sampled every 50 ms) with the bare loop,
and the worker's RSS before any loop is built (the harness's own memory) with
bare Python and with Python that has imported NumPy.

A variant whose optional dependency is missing (torch, numba) is listed as skipped.

Exit codes:
  0    measured
  2    usage error (unknown variant, non-positive --epochs/--repeat, ...)
  5    a measurement failed (the training code raised, or a child crashed)
  130  interrupted
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

from harness import bench
from harness.commands.argtypes import whole_number
from harness.errors import UsageError
from harness.formatting import format_speed
from harness.loops import registered_variants

FAILED_EXIT_CODE = 5
DEFAULT_VARIANTS = ("numpy", "numba", "torch", "lists", "generators")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``bench``."""
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        metavar="NAME",
        help=f"registered variants to time (default: {' '.join(DEFAULT_VARIANTS)})",
    )
    defaults = ", ".join(f"{name} {bench.DEFAULT_EPOCHS[name]}" for name in DEFAULT_VARIANTS)
    parser.add_argument(
        "--epochs", type=whole_number, metavar="N", help=f"measured epochs per measurement (default: {defaults})"
    )
    warmups = ", ".join(f"{name} {bench.DEFAULT_WARMUP[name]}" for name in DEFAULT_VARIANTS)
    parser.add_argument(
        "--warmup", type=whole_number, metavar="N", help=f"untimed epochs before them (default: {warmups})"
    )
    parser.add_argument("--repeat", type=whole_number, default=5, metavar="R", help="interleaved rounds (default 5)")
    parser.add_argument(
        "--baseline", metavar="NAME", help="the variant the ratios are to (default numpy, else the first)"
    )
    parser.add_argument(
        "--threads", type=whole_number, default=1, metavar="T", help="BLAS/OpenMP/torch threads per child (default 1)"
    )
    parser.add_argument(
        "--fc-only", action="store_true", help="train only the fully connected layers (the seed's 2nd column)"
    )
    parser.add_argument(
        "--overhead",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time numpy under `run` (default: on when numpy is benchmarked)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the numbers as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _check_json_path(path: Path | None) -> None:
    """Refuse an unwritable --json before minutes of measuring."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--json {str(path)!r} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--json {str(path)!r}: directory {str(parent)!r} does not exist")


def _progress(index: int, total: int, outcome: bench.Outcome) -> None:
    job = outcome.job
    if outcome.skipped is not None:
        detail = f"skipped: {outcome.skipped}"
    elif job.kind == bench.MATMUL and outcome.flops_per_s is not None:
        detail = f"{outcome.flops_per_s / 1e9:.3g} GFLOP/s"
    elif job.kind == bench.RUN:
        in_run, bare = bench.pair_rates(outcome)
        detail = f"{format_speed(in_run)} epochs/s vs bare {format_speed(bare)} in turns (wall, recording included)"
    else:
        detail = f"{format_speed(bench.loop_rate(outcome.epoch_s, job.warmup))} epochs/s"
    print(f"bench [{index}/{total}] round {job.round}: {job.label}: {detail}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Measure, print the table and its notes; save JSON when asked."""
    plan = bench.make_plan(
        args.variants,
        list(registered_variants()),
        epochs=args.epochs,
        warmup=args.warmup,
        repeat=args.repeat,
        baseline=args.baseline,
        threads=args.threads,
        fc_only=args.fc_only,
        overhead=args.overhead,
    )
    _check_json_path(args.json)
    load_start = os.getloadavg()[0]
    show = not args.quiet and sys.stderr.isatty()
    with tempfile.TemporaryDirectory(prefix="leakbench-bench-") as results:
        measure = bench.Measurer(plan, Path(results))
        try:
            outcomes = bench.execute_plan(plan, measure, _progress if show else None)
        except bench.MeasurementError as exc:
            print(f"leakbench: error: {exc}", file=sys.stderr)
            return FAILED_EXIT_CODE
    report = bench.summarise(plan, outcomes, (load_start, os.getloadavg()[0]))
    if plan.overhead:  # what the harness costs in time, then in memory
        footprint = bench.measure_footprint(bench.child_environment(plan.threads))
        report = dataclasses.replace(report, footprint=footprint)
    print(bench.format_table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(bench.report_to_dict(report), indent=2) + "\n", encoding="utf-8")
    return 0
