"""Explain a run's memory growth: the verdict with its numbers and, with --trace or --lines, where it comes from.

Recomputes the growth verdict from epochs.csv (on the measure the run was
judged on), stores it in the run's meta.json under "growth", and prints the
trend of RSS, of the process tree's PSS and USS when the worker had children,
and of the Python heap when the run was traced, the projection to the memory
cap; with --lines, the lines that kept resident memory epoch after epoch
(native memory too) and whether it is Python objects or native memory; with
--trace, the allocation sites and object types that grew most.
"""

from __future__ import annotations

import argparse
import os

from harness.growth import summarise_run
from harness.report.explain import explain_text
from harness.storage import load_run, store_growth


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: one run directory."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. results/<run-id>")


def run(args: argparse.Namespace) -> int:
    """Analyse, store and print; UsageError (from the loader) for a missing or unreadable run."""
    loaded = load_run(args.run_dir)
    growth = summarise_run(loaded.epochs, loaded.meta)
    print(explain_text(loaded.meta, growth, loaded.trace, root=os.getcwd(), lines=loaded.lines), end="")
    # The analysis is shown either way; a read-only archive of runs must still be explainable.
    store_growth(loaded.path, loaded.meta, growth)
    return 0
