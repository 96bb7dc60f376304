"""Bench: how fast each variant trains, against the machine's limit, and what recording costs.

Beside the data's path, not on it: ``python -m harness bench`` times bare loops
and measures nothing about memory.  A plan (:mod:`~harness.bench.plan`) lists
jobs in interleaved order: in each round every variant's bare loop once, in a
fresh child (:mod:`~harness.bench.child`), numpy under ``run`` (through
:mod:`harness.recording`) taking turns on one CPU with another bare loop when
the overhead is measured (:mod:`~harness.bench.turns`), then the float64
matmul rate, so drift on a shared machine hits all alike.
:mod:`~harness.bench.measure` runs the jobs; :mod:`~harness.bench.results` is
the arithmetic (pure); :mod:`~harness.bench.table` prints the table and the
``--json`` file.
"""

from __future__ import annotations

from harness.bench.footprint import Footprint, measure_footprint
from harness.bench.measure import (
    JOB_TIMEOUT_S,
    THREAD_VARIABLES,
    MeasurementError,
    Measurer,
    child_environment,
    execute_plan,
)
from harness.bench.plan import (
    DEFAULT_EPOCHS,
    DEFAULT_WARMUP,
    FALLBACK_EPOCHS,
    FALLBACK_WARMUP,
    LOOP,
    MATMUL,
    MATMUL_REPEATS,
    MATMUL_SIZE,
    OVERHEAD_EPOCHS,
    OVERHEAD_VARIANT,
    OVERHEAD_WARMUP,
    RUN,
    THREAD_OPTIONS,
    Job,
    Plan,
    make_plan,
)
from harness.bench.results import (
    Outcome,
    Overhead,
    Report,
    Row,
    Spread,
    loop_rate,
    pair_rates,
    ratio,
    share,
    summarise,
    turn_rate,
)
from harness.bench.table import (
    HEADER,
    SCHEMA_VERSION,
    footer_lines,
    footprint_line,
    format_table,
    report_to_dict,
)
from harness.bench.turns import TURN_S, TurnTaker

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_WARMUP",
    "FALLBACK_EPOCHS",
    "FALLBACK_WARMUP",
    "HEADER",
    "JOB_TIMEOUT_S",
    "LOOP",
    "MATMUL",
    "MATMUL_REPEATS",
    "MATMUL_SIZE",
    "OVERHEAD_EPOCHS",
    "OVERHEAD_VARIANT",
    "OVERHEAD_WARMUP",
    "RUN",
    "SCHEMA_VERSION",
    "THREAD_OPTIONS",
    "THREAD_VARIABLES",
    "TURN_S",
    "Footprint",
    "Job",
    "MeasurementError",
    "Measurer",
    "Outcome",
    "Overhead",
    "Plan",
    "Report",
    "Row",
    "Spread",
    "TurnTaker",
    "child_environment",
    "execute_plan",
    "footer_lines",
    "footprint_line",
    "format_table",
    "loop_rate",
    "make_plan",
    "measure_footprint",
    "pair_rates",
    "ratio",
    "report_to_dict",
    "share",
    "summarise",
    "turn_rate",
]
