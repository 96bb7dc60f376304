"""Explain a run's memory growth: the verdict with its numbers and, with --trace, where the growth comes from.

Recomputes the growth verdict from epochs.csv, stores it in the run's meta.json
under "growth", and prints the trend of RSS (and of the Python heap when the run
was traced), the projection to the memory cap, and the allocation sites and
object types that grew most.
"""

from __future__ import annotations

import argparse
import os
import sys

from harness.explain import explain_text
from harness.growth import summarise_growth
from harness.storage import load_run, write_meta


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: one run directory."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. results/<run-id>")


def run(args: argparse.Namespace) -> int:
    """Analyse, store and print; UsageError (from the loader) for a missing or unreadable run."""
    loaded = load_run(args.run_dir)
    meta = loaded.meta
    host = meta.get("host") or {}
    growth = summarise_growth(loaded.epochs, meta.get("memory_cap_bytes"), host.get("memory_total_bytes"))
    print(explain_text(meta, growth, loaded.trace, root=os.getcwd()), end="")
    try:
        write_meta(loaded.path, {**meta, "growth": growth})
    except OSError as exc:
        # The analysis is shown either way; a read-only archive of runs must still be explainable.
        print(f"note: growth not stored in {loaded.path / 'meta.json'}: {exc.strerror or exc}", file=sys.stderr)
    return 0
