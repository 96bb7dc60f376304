"""Warm-up: how many leading epochs to leave out of the fit, detected from the series itself.

Allocator and cache warm-up make the first epochs rise.  A line fitted through
the last two thirds of the series, extrapolated back, says where earlier epochs
"should" be; warm-up ends at the first epoch from which three epochs in a row
sit on it (at most a third of the run, so a steady leak is never swallowed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.growth.trend import theil_sen_line

# Warm-up may take at most the first third: a steady leak must keep most of its epochs.
MAX_WARMUP_FRACTION = 1 / 3
WARMUP_SETTLE = 3  # warm-up ends once this many epochs in a row sit on the line
WARMUP_SIGMAS = 4.0  # "on the line": within this many robust standard deviations,
NOISE_FLOOR_BYTES = 16 * 1024  # or 4 pages (a page-granular series often has zero spread), or one epoch's growth


def detect_warmup(
    values: Sequence[float] | np.ndarray,
    epochs: Sequence[float] | np.ndarray | None = None,
    max_fraction: float = MAX_WARMUP_FRACTION,
    noise_floor: float = NOISE_FLOOR_BYTES,
) -> int:
    """How many leading epochs are warm-up: before the series settles onto the line its later part follows."""
    # The last (1 - max_fraction) of the series is warm-up free by assumption; a Theil-Sen
    # line through it, extrapolated back, says where earlier epochs "should" be.  The
    # warm-up ends at the first epoch from which WARMUP_SETTLE epochs in a row lie within
    # the tolerance of that line, so a level shift (step then flat), a rising curve
    # (warm-up then flat or then leak) and a fall after a first-epoch peak are all cut,
    # while an isolated outlier later on is not taken for warm-up.  "Within" is the larger
    # of WARMUP_SIGMAS robust sigmas of the tail's residuals, the noise floor, and one epoch
    # of the line's own growth: a steady leak's increments vary, the line extrapolated
    # back over several epochs carries that error, and a miss smaller than one epoch's
    # growth is a shift in when memory was read, not a warm-up (and barely moves the slope).
    y = np.asarray(values, dtype=float)
    x = np.arange(1, y.size + 1, dtype=float) if epochs is None else np.asarray(epochs, dtype=float)
    limit = int(y.size * max_fraction)
    if limit == 0 or y.size - limit < 3:
        return 0
    slope, intercept = theil_sen_line(y[limit:], x[limit:])
    residuals = y - (intercept + slope * x)
    tail = residuals[limit:]
    scale = 1.4826 * float(np.median(np.abs(tail - np.median(tail))))  # MAD as a normal sigma
    off = np.abs(residuals) > max(WARMUP_SIGMAS * scale, noise_floor, abs(slope))
    for k in range(limit + 1):
        if not off[k : k + WARMUP_SETTLE].any():
            return k
    return limit
