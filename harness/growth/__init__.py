"""Growth: from a run's memory per epoch to a verdict (leak, flat or inconclusive) with its numbers.

Stage 3, pure statistics: data in, numbers out.  The epochs table of a run
(:func:`harness.storage.load_run`) goes through warm-up detection
(:mod:`~harness.growth.warmup`), a robust trend (:mod:`~harness.growth.trend`:
Theil-Sen slope, Sen's interval, Mann-Kendall test) and the decision rule
(:mod:`~harness.growth.verdict`), for each memory series a run recorded (the
worker's RSS, the Python heap, the process tree's PSS and USS).
:mod:`~harness.growth.summary` judges one of them, the run's measure, and hands
on the ``growth`` dict that meta.json stores and that the guard, ``explain``
and the report read; :mod:`~harness.growth.describe` says it in words.
"""

from harness.growth.describe import describe_measure, format_growth, measure_name, reaches
from harness.growth.summary import (
    TREE_MEASURES,
    check_measure,
    had_children,
    measure_label,
    summarise_growth,
    summarise_run,
)
from harness.growth.trend import Trend, theil_sen_line, trend
from harness.growth.verdict import (
    ALPHA,
    CONFIDENCE,
    MEASURES,
    MIN_BYTES_PER_EPOCH,
    MIN_EPOCHS,
    NATIVE_SHARE,
    ci_label,
    exceeds_budget,
    fit_column,
    verdict,
)
from harness.growth.warmup import detect_warmup

__all__ = [
    "ALPHA",
    "CONFIDENCE",
    "MEASURES",
    "MIN_BYTES_PER_EPOCH",
    "MIN_EPOCHS",
    "NATIVE_SHARE",
    "TREE_MEASURES",
    "Trend",
    "check_measure",
    "ci_label",
    "describe_measure",
    "detect_warmup",
    "exceeds_budget",
    "fit_column",
    "format_growth",
    "had_children",
    "measure_label",
    "measure_name",
    "reaches",
    "summarise_growth",
    "summarise_run",
    "theil_sen_line",
    "trend",
    "verdict",
]
