"""Judge memory growth across epochs: warm-up, trend, a leak/flat/inconclusive verdict, and a projection.

Pure functions (data in, numbers out); the estimators live in :mod:`harness.growth.trend`,
and :mod:`harness.growth.summary` builds from :func:`fit_column` the ``growth``
dict stored in a run's meta.json.

Decision rule (:func:`verdict`), with its defaults:

- fewer than ``min_epochs`` = 6 epochs after warm-up: ``inconclusive``.  With
  five points the smallest two-sided Mann-Kendall p is 0.028 (0.043 with one
  tie), so a single step against the trend already hides any leak, and Sen's
  interval at such n is the range of the extreme pairwise slopes.
- the 95 % CI lies entirely below ``min_bytes_per_epoch`` = 32 KiB: ``flat``,
  even when the trend is statistically non-zero.  Memory that shrinks is
  ``flat`` too.
- the CI lies entirely above the threshold and Mann-Kendall p < 0.05: ``leak``.
  Both must hold, so one step in an otherwise flat series, whose pairs are mostly
  ties, keeps the lower bound at zero and is never called a leak.
- otherwise (the CI straddles the threshold): ``inconclusive``.

Why 32 KiB per epoch (8 pages): RSS is a high-water mark.  Freed memory is
rarely returned, so a run with no leak at all creeps up each time a transient
peak beats the old one, and small per-epoch caches add a steady few pages.
Measured on our fixed variants (one run each, 20 epochs unless said): lists
6.7 KiB/epoch (95 % CI 5.1-8.0) with a flat Python block count, generators
16.0 KiB/epoch (16.0-18.2), numpy 0.13 KiB/epoch over 300 epochs; torch swings
by +-3 MiB between epochs (CI -43 to +9.5 KiB over 50).  The smallest leak the
project promises to catch is 64 KiB/epoch, measured within 25 %: a threshold at
half of it keeps a measured 48 KiB leak clearly above, creep of a few pages
clearly below, and costs under 32 MiB per thousand epochs when it is missed.  A
stricter bound is a budget (:func:`exceeds_budget`) or ``min_bytes_per_epoch``.

Serial correlation (a page once taken stays) makes the nominal 95 % optimistic;
the practical threshold, not the p-value, is what keeps flat runs from being
called leaks, which is why the leak rule tests the CI against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.errors import UsageError
from harness.formatting import format_p, format_rate, format_rate_ci, plural
from harness.growth.trend import Trend, trend
from harness.growth.warmup import detect_warmup

CONFIDENCE = 0.95
ALPHA = 0.05
MIN_EPOCHS = 6
MIN_BYTES_PER_EPOCH = 32 * 1024  # 8 pages per epoch: see the module docstring
# RSS grows "but the heap does not" when the heap explains under a quarter of it.
NATIVE_SHARE = 0.25

# What each measured column is called in sentences and tables.
MEASURES = {
    "rss_bytes": "RSS",
    "heap_bytes": "Python heap",
    "tree_pss_bytes": "tree PSS",
    "tree_uss_bytes": "tree USS",
}


def verdict(
    fit: Trend | None,
    min_bytes_per_epoch: float = MIN_BYTES_PER_EPOCH,
    min_epochs: int = MIN_EPOCHS,
    alpha: float = ALPHA,
    per: str = "epoch",
) -> tuple[str, str]:
    """("leak" | "flat" | "inconclusive", one-line reason) for a fitted trend; see the module docstring.

    ``per`` names what the points are: epochs, or a script's windows of samples.
    """
    n = 0 if fit is None else fit.n
    if fit is None or n < min_epochs:
        return "inconclusive", f"only {plural(n, per)} to fit; at least {min_epochs} are needed"
    level = f"{fit.confidence:.0%} CI"
    threshold = format_rate(min_bytes_per_epoch, per)
    if fit.ci_high < min_bytes_per_epoch:
        return "flat", f"the {level} lies below the {threshold} threshold"
    if fit.ci_low > min_bytes_per_epoch and fit.p_value < alpha:
        return "leak", f"the {level} lies above the {threshold} threshold (Mann-Kendall p{_p_relation(fit.p_value)})"
    if fit.ci_low > min_bytes_per_epoch:
        return "inconclusive", f"no significant trend (Mann-Kendall p{_p_relation(fit.p_value)})"
    return "inconclusive", f"the {level} straddles the {threshold} threshold"


def fit_column(
    epochs: pd.DataFrame, column: str, min_bytes_per_epoch: float, min_epochs: int, per: str = "epoch"
) -> dict[str, Any]:
    """Warm-up, trend and verdict of one memory column of an epochs table: one series of the growth dict.

    ``per`` is "window" when the epochs are a script's windows of samples: the
    figures are then per window, and the reasons say so.
    """
    table = pd.DataFrame(
        {
            "epoch": pd.to_numeric(epochs["epoch"], errors="coerce"),
            "value": pd.to_numeric(epochs[column], errors="coerce"),
        }
    ).dropna()
    # A truncated or repeated row must not break the strictly increasing epochs a trend needs.
    table = table.drop_duplicates("epoch", keep="last").sort_values("epoch")
    x, y = table["epoch"].to_numpy(float), table["value"].to_numpy(float)
    warmup = detect_warmup(y, x)
    fit = trend(y[warmup:], x[warmup:]) if y.size - warmup >= 2 else None
    decision, reason = verdict(fit, min_bytes_per_epoch, min_epochs, per=per)
    if y.size - warmup < min_epochs:
        after = f" after {plural(warmup, 'warm-up ' + per)}" if warmup else ""
        reason = f"only {plural(y.size - warmup, per)}{after}; at least {min_epochs} are needed"
    return {
        "measure": column,
        "per": per,
        "verdict": decision,
        "reason": reason,
        "bytes_per_epoch": None if fit is None else fit.slope,
        "ci_low": None if fit is None else fit.ci_low,
        "ci_high": None if fit is None else fit.ci_high,
        "confidence": CONFIDENCE,
        "p_value": None if fit is None else fit.p_value,
        "warmup_epochs": warmup,
        "n_epochs_used": 0 if fit is None else fit.n,
        "first_epoch_used": None if fit is None else int(x[warmup]),
        "last_epoch": int(x[-1]) if x.size else None,
        "fitted_last_bytes": None if fit is None else fit.at(x[-1]),
        "min_bytes_per_epoch": float(min_bytes_per_epoch),
        "min_epochs": min_epochs,
        "pairs_sampled": False if fit is None else fit.pairs_sampled,
    }


def exceeds_budget(growth: dict[str, Any], max_bytes_per_epoch: float) -> str | None:
    """A failure message when growth is confidently above the budget, else None."""
    # Confidently: enough epochs, a significant trend and the whole CI above the budget; the
    # verdict's rule with the budget as threshold.  A budget may be stricter than the verdict's
    # threshold, but one below the allocator's creep (a few KiB/epoch in short runs) fails on it.
    if (
        not isinstance(max_bytes_per_epoch, (int, float))
        or isinstance(max_bytes_per_epoch, bool)
        or not max_bytes_per_epoch >= 0
    ):
        raise UsageError(f"invalid growth budget {max_bytes_per_epoch!r}: expected bytes per epoch >= 0")
    if growth.get("bytes_per_epoch") is None or growth["n_epochs_used"] < growth.get("min_epochs", MIN_EPOCHS):
        return None
    if growth["p_value"] >= ALPHA or growth["ci_low"] <= max_bytes_per_epoch:
        return None
    name = MEASURES.get(growth.get("measure", ""), "memory")
    per = growth.get("per", "epoch")
    rate, ci = format_rate_ci(growth["bytes_per_epoch"], growth["ci_low"], growth["ci_high"], per=per)
    over = plural(growth["n_epochs_used"], per)
    return f"{name} grew {rate} over {over} ({ci_label(growth)} {ci}); budget {format_rate(max_bytes_per_epoch, per)}"


def ci_label(measure: Mapping[str, Any]) -> str:
    """ "95% CI"."""
    return f"{measure.get('confidence', CONFIDENCE):.0%} CI"


def _p_relation(p: float) -> str:
    """ "=0.012" or "<0.001", to follow a "p"."""
    text = format_p(p)
    return text if text.startswith("<") else "=" + text
