"""What ``python -m harness bench`` measures and how it adds up: the plan, one job at a time, the table.

A plan is a list of jobs in interleaved order: in each round every variant's
bare loop once (numpy's run under ``run`` right after it when the overhead is
measured), then the matrix-multiply rate, so drift on a shared machine hits
all alike.  Each job is a fresh child process with the thread variables set in
its environment before NumPy or torch is imported.

The figures are pure functions of what the jobs return.

This module is the one place callers import from; each job lives in its own module:

- :mod:`harness.bench_plan`: the choices and the jobs in order
- :mod:`harness.bench_figures`: what a job returns and the arithmetic
- :mod:`harness.bench_table`: the table and the JSON file
- :mod:`harness.bench_measure`: running the jobs in child processes
"""

from __future__ import annotations

from harness.bench_figures import (
    Outcome,
    Overhead,
    Report,
    Row,
    Spread,
    flops_per_epoch,
    loop_rate,
    ratio,
    share,
    span_rate,
    summarise,
)
from harness.bench_measure import (
    JOB_TIMEOUT_S,
    THREAD_VARIABLES,
    MeasurementError,
    Measurer,
    child_environment,
    execute_plan,
)
from harness.bench_plan import (
    DEFAULT_EPOCHS,
    DEFAULT_WARMUP,
    FALLBACK_EPOCHS,
    FALLBACK_WARMUP,
    LOOP,
    MATMUL,
    MATMUL_REPEATS,
    MATMUL_SIZE,
    OVERHEAD_VARIANT,
    RUN,
    THREAD_OPTIONS,
    Job,
    Plan,
    make_plan,
)
from harness.bench_table import (
    HEADER,
    SCHEMA_VERSION,
    footer_lines,
    format_rate,
    format_table,
    format_times,
    report_to_dict,
)

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
    "OVERHEAD_VARIANT",
    "RUN",
    "SCHEMA_VERSION",
    "THREAD_OPTIONS",
    "THREAD_VARIABLES",
    "Job",
    "MeasurementError",
    "Measurer",
    "Outcome",
    "Overhead",
    "Plan",
    "Report",
    "Row",
    "Spread",
    "child_environment",
    "execute_plan",
    "flops_per_epoch",
    "footer_lines",
    "format_rate",
    "format_table",
    "format_times",
    "loop_rate",
    "make_plan",
    "ratio",
    "report_to_dict",
    "share",
    "span_rate",
    "summarise",
]
