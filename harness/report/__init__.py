"""Report: recorded runs turned into tables, figures and text for people.

Stage 4, the end of the data's path.  It reads finished run directories
(:func:`harness.storage.load_runs`) and their growth verdicts
(:mod:`harness.growth`), and never runs anything.  Data first, then drawing,
then writing:

- :mod:`~harness.report.runs` (names, growth and speed of a run),
  :mod:`~harness.report.run_table`, :mod:`~harness.report.seed` (the seed's
  table and curves), :mod:`~harness.report.memory` (the headline figure's
  panels), :mod:`~harness.report.trace` (allocation sites): pure, runs in,
  DataFrames out;
- :mod:`~harness.report.figures` draws them with matplotlib, and
  :mod:`~harness.report.document` lays out report.md and report.html through
  :mod:`~harness.report.writers`;
- :mod:`~harness.report.explain` (one run as text) and
  :mod:`~harness.report.compare` (a baseline against a candidate) print for a
  terminal and never load matplotlib.

``write_report`` is loaded on first use: matplotlib takes a second to import,
which ``explain`` and ``compare`` do not need.
"""

from typing import Any

from harness.report.compare import Change, caveats, compare_tables, comparison_table, regressions
from harness.report.explain import explain_text
from harness.report.memory import MemoryPanel, cap_hit, memory_panels
from harness.report.run_table import RUN_TABLE_COLUMNS, format_run_table, run_table
from harness.report.runs import (
    epochs_per_second,
    final_metric,
    growth_of,
    leak_of,
    model_of,
    ordered_variants,
    peak_rss_bytes,
    pick_run,
    run_label,
    sort_runs,
)
from harness.report.seed import (
    MODELS,
    SEED_CHECKPOINTS,
    SEED_EPOCHS,
    SEED_FIGURES,
    mean_curves,
    seed_curves,
    seed_runs,
    seed_table,
)
from harness.report.trace import growing_types, trace_table, traced_runs

__all__ = [
    "MODELS",
    "RUN_TABLE_COLUMNS",
    "SEED_CHECKPOINTS",
    "SEED_EPOCHS",
    "SEED_FIGURES",
    "Change",
    "MemoryPanel",
    "ReportFiles",
    "cap_hit",
    "caveats",
    "compare_tables",
    "comparison_table",
    "epochs_per_second",
    "explain_text",
    "final_metric",
    "format_run_table",
    "growing_types",
    "growth_of",
    "leak_of",
    "mean_curves",
    "memory_panels",
    "model_of",
    "ordered_variants",
    "peak_rss_bytes",
    "pick_run",
    "regressions",
    "run_label",
    "run_table",
    "seed_curves",
    "seed_runs",
    "seed_table",
    "sort_runs",
    "trace_table",
    "traced_runs",
    "write_report",
]

_DRAWING = {"write_report", "ReportFiles"}


def __getattr__(name: str) -> Any:
    """``write_report`` and ``ReportFiles`` on first use, so text-only callers never import matplotlib."""
    if name in _DRAWING:
        from harness.report import document

        return getattr(document, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
