"""Turn recorded runs into tables: the per-run table, the seed's table, curves and allocation sites.

Pure: runs in, pandas DataFrames out.  Nothing here draws or writes; :mod:`harness.plots`
draws these data and :mod:`harness.render` writes them out.

This module is the one place callers import from; each job lives in its own module:

- :mod:`harness.report_runs`: find, load, describe, order and pick runs
- :mod:`harness.report_table`: the per-run table
- :mod:`harness.report_seed`: the seed's table and learning curves
- :mod:`harness.report_memory`: the headline memory figure's panels and cap hits
- :mod:`harness.report_trace`: allocation sites and object types of traced runs
- :mod:`harness.report_format`: display formats shared by the report and compare
"""

from __future__ import annotations

from harness.report_format import (
    format_bytes,
    format_growth,
    format_percent,
    format_rate,
    format_seconds,
)
from harness.report_memory import MemoryPanel, cap_hit, memory_panels
from harness.report_runs import (
    FINISHED_STATUSES,
    NO_LEAK,
    epochs_per_second,
    final_metric,
    find_run_dirs,
    growth_of,
    leak_of,
    load_runs,
    model_of,
    ordered_variants,
    peak_rss_bytes,
    pick_run,
    run_label,
    sort_runs,
)
from harness.report_seed import (
    MODELS,
    SEED_CHECKPOINTS,
    SEED_EPOCHS,
    SEED_FIGURES,
    mean_curves,
    seed_curves,
    seed_runs,
    seed_table,
)
from harness.report_table import RUN_TABLE_COLUMNS, format_run_table, run_table
from harness.report_trace import growing_types, trace_table, traced_runs

__all__ = [
    "FINISHED_STATUSES",
    "MODELS",
    "NO_LEAK",
    "RUN_TABLE_COLUMNS",
    "SEED_CHECKPOINTS",
    "SEED_EPOCHS",
    "SEED_FIGURES",
    "MemoryPanel",
    "cap_hit",
    "epochs_per_second",
    "final_metric",
    "find_run_dirs",
    "format_bytes",
    "format_growth",
    "format_percent",
    "format_rate",
    "format_run_table",
    "format_seconds",
    "growing_types",
    "growth_of",
    "leak_of",
    "load_runs",
    "mean_curves",
    "memory_panels",
    "model_of",
    "ordered_variants",
    "peak_rss_bytes",
    "pick_run",
    "run_label",
    "run_table",
    "seed_curves",
    "seed_runs",
    "seed_table",
    "sort_runs",
    "trace_table",
    "traced_runs",
]
