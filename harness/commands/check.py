"""Check recorded runs against memory budgets: exit 0 when every run is within budget, 1 when any is not.

Each RUN_DIR's growth is analysed (as `explain` does) and judged against its
budget: --max-growth and --max-peak when given, over the [tool.leakbench] table
of ./pyproject.toml (or --config PATH), which can give each variant and each
leak its own budget:

  [tool.leakbench]
  max-growth = "64 KiB"                     # default for every run
  [tool.leakbench.budgets.numpy]            # variant numpy, no leak
  max-growth = "16 KiB"
  max-peak = "200 MiB"
  [tool.leakbench.budgets."numpy:history"]  # variant numpy with --leak history
  expect = "leak"                           # passes only when the leak is caught

Each run is judged on its budget's measure (measure = "rss", the worker's own,
by default; "tree-pss" or "tree-uss" for the worker with every process it
started; "heap" for a traced run's Python heap), and max-peak holds that
measure's peak (the worker's RSS for rss and heap).

Growth is over budget only when its whole 95% confidence interval is; without
any budget a run fails when its verdict is `leak`. A run expected to leak
passes when it is called a leak or stopped by the memory cap; --max-growth and
--max-peak do not apply to it. A run that did not complete fails.

A script's run is keyed by its path as given to `run --script` ("train.py"),
or by "-m MODULE"; when the script marks no epochs its growth and max-growth
are per window of its samples.

One line per run: "ok", "FAIL" (with what was exceeded and by how much) or
"inconclusive" (too few epochs or too much noise for a verdict).

Exit codes:
  0  every run within budget (inconclusive ones too, unless --strict)
  1  at least one run over budget, stopped early, not caught as an expected
     leak, or inconclusive with --strict
  2  usage error: a missing or unreadable run directory, a bad size or configuration
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.formatting import format_rate, format_size
from harness.guard import Budget, BudgetTable, Judgement, judge, load_budgets, size_option
from harness.records import RUNNING
from harness.storage import Run, load_run, store_growth

DEFAULT_CONFIG = Path("pyproject.toml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``check``."""
    parser.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="run directories, e.g. results/<run-id>",
    )
    parser.add_argument(
        "--max-growth",
        metavar="SIZE",
        help="growth budget per epoch for every run, e.g. 64KiB (overrides the config)",
    )
    parser.add_argument(
        "--max-peak",
        metavar="SIZE",
        help="peak budget for every run, e.g. 500MiB (overrides the config): of the worker's RSS, or of the "
        "tree's PSS or USS when the budget's measure is tree-pss or tree-uss",
    )
    parser.add_argument("--strict", action="store_true", help="fail runs whose verdict is inconclusive")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="pyproject.toml holding [tool.leakbench] budgets (default: ./pyproject.toml when present)",
    )


def budget_for(run: Run, table: BudgetTable, overrides: Budget) -> Budget:
    """The run's budget: the command-line sizes over its table entry, except for a run expected to leak."""
    budget = table.for_run(str(run.meta.get("variant")), run.meta.get("leak"))
    return budget if budget.expects_leak else overrides.over(budget)


def line(shown: str, judgement: Judgement, budget: Budget) -> str:
    """The one line printed for a run."""
    where = f"{shown} ({judgement.label})"
    if judgement.failures:
        return f"FAIL {where}: {'; '.join(judgement.failures)}"
    tag = "inconclusive" if judgement.verdict == "inconclusive" else "ok"
    limits = []
    if budget.expects_leak:
        limits.append("a leak was expected")
    if budget.max_growth is not None:
        limits.append(f"budget {format_rate(budget.max_growth, judgement.growth.get('per', 'epoch'))}")
    if budget.max_peak is not None and judgement.peak_bytes is not None:
        name = "" if judgement.peak_name == "RSS" else f"{judgement.peak_name} "
        limits.append(f"peak {name}{format_size(judgement.peak_bytes)} of {format_size(budget.max_peak)}")
    extra = "".join(f"; {text}" for text in (*limits, *judgement.notes))
    return f"{tag} {where}: {judgement.summary}{extra}"


def run(args: argparse.Namespace) -> int:
    """Judge every run and print a line each; 0 when all are within budget, 1 otherwise."""
    overrides = Budget(
        max_growth=size_option("max-growth", args.max_growth),
        max_peak=size_option("max-peak", args.max_peak),
    )
    table = load_budgets(args.config, required=True) if args.config is not None else load_budgets(DEFAULT_CONFIG)
    # Every directory is read and analysed before anything is printed: a usage error leaves no half report.
    runs = [load_run(path) for path in args.run_dirs]
    judged = [(run, budget_for(run, table, overrides)) for run in runs]
    judgements = [judge(run, budget, strict=args.strict) for run, budget in judged]
    for path, (run, budget), judgement in zip(args.run_dirs, judged, judgements):
        print(line(str(path), judgement, budget))
        if run.meta.get("growth") is None and budget.warmup is None and run.meta.get("status") != RUNNING:
            store_growth(run.path, run.meta, judgement.analysis)
    return 1 if any(judgement.failures for judgement in judgements) else 0
