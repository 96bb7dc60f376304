"""When growth starts and when it stops: change points in a memory series (pure NumPy).

The model: the series is cut into at most three segments (two change points),
each with its own straight line, so a late leak (flat, then growing), one that
saturates (growing, then flat), a step (flat, a jump, flat) and a plain leak
are all one to three lines.  The cuts are found by exhaustive search over
least-squares segment costs (O(1) per segment from centred prefix sums, so two
cuts cost O(m^2) on m points), the number of cuts by a BIC-like penalty on
``m log(RSS/m + page^2)``, the page floor keeping a page-granular series (often
zero residuals) from buying cuts with nothing.  Series longer than
:data:`MAX_POINTS` are searched on block medians and each cut is refined on
the full series.

Least squares only *places* the cuts.  What a segment *is* is decided by the
verdict's own robust rule (:func:`harness.growth.verdict.verdict`: Theil-Sen,
Sen's interval, Mann-Kendall, the threshold, at least 6 epochs), so change
points can only add a leak where a segment of 6 epochs or more passes the
verdict's own test.  An onset (a late leak) is named only when the trailing
leak starts after the warm-up with at least :data:`MIN_BEFORE_ONSET` epochs
before it, nothing before it grows, its growth is gradual (no single step
carries half of it) and it climbs to new ground (its last reading at least
half its rise above every reading before it: a sawtooth's next tooth does
not).  A stop is named when an earlier segment of at least
:data:`MIN_BEFORE_ONSET` epochs grew at least :data:`MIN_STOPPED_BYTES`,
gradually, and a flat tail of at least 6 epochs and a fifth of the run
follows, even when warm-up detection took that growth for warm-up (a cache
that fills for 30 epochs is not a warm-up to leave unsaid); shorter growth is
the allocator's warm-up.

Why not PELT or binary segmentation with a robust cost: a memory series has a
handful of regimes that matter, an exhaustive search for two cuts is exact and
cheap (about 15 ms at 1,000 epochs, 40 ms at a million), and binary
segmentation can miss flat-growth-flat, whose first cut alone gains little.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.growth.trend import Trend, trend
from harness.growth.verdict import MIN_BYTES_PER_EPOCH, MIN_EPOCHS, verdict

MAX_POINTS = 300  # block medians searched exhaustively; beyond, the cuts are refined on the full series
PAGE = 4096.0  # bytes: the resolution of RSS, the noise floor of a segment's cost
PENALTY = 3.0  # BIC multiplier per cut: each adds a position, a slope and an intercept
MIN_FLAT_FRACTION = 0.2  # a stop needs a flat tail of at least this share of the run
MIN_BEFORE_ONSET = 12  # an onset needs this many epochs before it: fewer is the allocator refilling freed memory
MIN_STOPPED_BYTES = 1024 * 1024  # a stop needs this much growth before it: less is allocator warm-up


@dataclass(frozen=True)
class Segment:
    """One regime: epochs first..last, its robust trend and what the verdict's rule calls it."""

    first: int
    last: int
    fit: Trend | None
    verdict: str

    @property
    def slope(self) -> float:
        """Bytes per epoch (0 without a fit)."""
        return 0.0 if self.fit is None else self.fit.slope


@dataclass(frozen=True)
class Changes:
    """The segments, and where growth starts (a late leak) or stops (saturation), if it does."""

    segments: tuple[Segment, ...]
    onset: Segment | None = None  # the leak from its onset to the end
    stopped: Segment | None = None  # the growth that stopped
    grown_bytes: float | None = None  # its fitted rise


Judge = Callable[[int, int, int, int], Segment]  # (lo, hi) in the judged points, (first, last) in the full series


def _prefix(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Prefix sums of 1, x, y, x^2, xy, y^2, centred (uncentred, 1e10-byte values over 1e6 epochs cancel)."""
    x, y = x - x.mean(), y - y.mean()
    zero = np.zeros(1)
    return tuple(np.concatenate([zero, np.cumsum(a)]) for a in (np.ones_like(x), x, y, x * x, x * y, y * y))


def _sse(p: tuple[np.ndarray, ...], i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Residual sum of squares of a least-squares line through points i..j-1 (vectorised over i, j)."""
    n, sx, sy, sxx, sxy, syy = (a[j] - a[i] for a in p)
    n = np.maximum(n, 1)
    vxx, vxy, vyy = sxx - sx * sx / n, sxy - sx * sy / n, syy - sy * sy / n
    with np.errstate(divide="ignore", invalid="ignore"):
        explained = np.where(vxx > 0, vxy * vxy / vxx, 0.0)
    return np.maximum(vyy - explained, 0.0)


def _latest_min(costs: np.ndarray, tolerance: float) -> int:
    """The minimum, the latest of near-ties: a boundary epoch that fits both lines goes to the earlier regime."""
    return int(np.flatnonzero(costs <= costs.min() + tolerance)[-1])


def _best_cuts(x: np.ndarray, y: np.ndarray, min_len: int, penalty: float) -> list[int]:
    """Indices where new segments start (0, 1 or 2), by penalised least squares."""
    m, p, floor2 = y.size, _prefix(x, y), PAGE * PAGE

    def cost(sse: float, cuts: int) -> float:
        return m * math.log(sse / m + floor2) + penalty * cuts * math.log(m)

    best: tuple[float, list[int]] = (cost(float(_sse(p, np.array([0]), np.array([m]))[0]), 0), [])
    starts = np.arange(min_len, m - min_len + 1)
    if starts.size:
        one = _sse(p, np.zeros_like(starts), starts) + _sse(p, starts, np.full_like(starts, m))
        k = _latest_min(one, 0.5 * floor2)
        best = min(best, (cost(float(one[k]), 1), [int(starts[k])]), key=lambda c: c[0])
        a, b = np.meshgrid(starts, starts, indexing="ij")
        ok = b - a >= min_len
        if ok.any():
            a, b = a[ok], b[ok]
            two = _sse(p, np.zeros_like(a), a) + _sse(p, a, b) + _sse(p, b, np.full_like(b, m))
            k = _latest_min(two, 0.5 * floor2)
            best = min(best, (cost(float(two[k]), 2), [int(a[k]), int(b[k])]), key=lambda c: c[0])
    return best[1]


def _refine(x: np.ndarray, y: np.ndarray, cuts: list[int], radius: int, min_len: int) -> list[int]:
    """Move each cut to its best position within ``radius`` on the full series (lines fitted on a local window)."""
    m, cuts = y.size, list(cuts)
    for c in range(len(cuts)):
        before, after = cuts[c - 1] if c else 0, cuts[c + 1] if c + 1 < len(cuts) else m
        left, right = max(before, cuts[c] - 2 * radius), min(after, cuts[c] + 2 * radius)
        positions = np.arange(
            max(before + min_len, cuts[c] - radius, left + 1), min(after - min_len, cuts[c] + radius, right - 1) + 1
        )
        if positions.size:
            p, local = _prefix(x[left:right], y[left:right]), positions - left
            sse = _sse(p, np.zeros_like(local), local) + _sse(p, local, np.full_like(local, right - left))
            cuts[c] = int(positions[_latest_min(sse, 0.5 * PAGE * PAGE)])
    return cuts


def segment_series(y: np.ndarray, x: np.ndarray, min_len: int = MIN_EPOCHS, penalty: float = PENALTY) -> list[int]:
    """Indices where a new regime starts: at most two, each segment at least ``min_len`` points long."""
    if y.size < 2 * min_len:
        return []
    if y.size <= MAX_POINTS:
        return _best_cuts(x, y, min_len, penalty)
    block = math.ceil(y.size / MAX_POINTS)
    usable = y.size // block * block
    yb = np.median(y[:usable].reshape(-1, block), axis=1)
    xb = x[:usable].reshape(-1, block).mean(axis=1)
    cuts = [c * block for c in _best_cuts(xb, yb, max(2, math.ceil(min_len / block)), penalty)]
    return _refine(x, y, cuts, 2 * block, min_len)


def _reduced(x: np.ndarray, y: np.ndarray, bounds: list[int]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Block medians within each segment (about MAX_POINTS in all), and the bounds in block units.

    Theil-Sen and Kendall's S on a million points take seconds, on 300 block
    medians milliseconds, and a straight line has the same slope per epoch in both.
    """
    block = math.ceil(y.size / MAX_POINTS)
    xs: list[float] = []
    ys: list[float] = []
    reduced = [0]
    for a, b in itertools.pairwise(bounds):
        edges = np.linspace(a, b, max(1, (b - a) // block) + 1).astype(int)
        xs.extend(float(x[i:j].mean()) for i, j in itertools.pairwise(edges))
        ys.extend(float(np.median(y[i:j])) for i, j in itertools.pairwise(edges))
        reduced.append(len(xs))
    return np.asarray(xs), np.asarray(ys), reduced


def _gradual(y: np.ndarray, rise: float) -> bool:
    """Growth spread over the segment, not one jump: no single step carries more than half of the rise."""
    return y.size < 2 or float(np.max(np.diff(y))) <= 0.5 * max(rise, 1.0)


def change_points(
    values: np.ndarray,
    epochs: np.ndarray,
    *,
    warmup: int = 0,
    min_bytes_per_epoch: float = MIN_BYTES_PER_EPOCH,
    min_epochs: int = MIN_EPOCHS,
) -> Changes:
    """Segments of the series, and the onset (after ``warmup`` points) and stop of growth; see the module docstring."""
    y_full, x_full = np.asarray(values, dtype=float), np.asarray(epochs, dtype=float)
    full = [0, *segment_series(y_full, x_full, min_epochs), y_full.size]
    x, y, bounds = (x_full, y_full, list(full)) if y_full.size <= MAX_POINTS else _reduced(x_full, y_full, full)

    def judge(lo: int, hi: int, first: int, last: int) -> Segment:
        fit = trend(y[lo:hi], x[lo:hi]) if hi - lo >= 2 else None
        return Segment(int(x_full[first]), int(x_full[last]), fit, verdict(fit, min_bytes_per_epoch, min_epochs)[0])

    segments = [judge(bounds[k], bounds[k + 1], full[k], full[k + 1] - 1) for k in range(len(bounds) - 1)]
    k = 1
    while k < len(segments):  # neighbouring leaks whose slopes' intervals overlap are one leak
        a, b = segments[k - 1], segments[k]
        overlap = a.fit and b.fit and a.fit.ci_low <= b.fit.ci_high and b.fit.ci_low <= a.fit.ci_high
        if a.verdict == b.verdict == "leak" and overlap:
            del bounds[k], full[k]
            segments[k - 1 : k + 1] = [judge(bounds[k - 1], bounds[k], full[k - 1], full[k] - 1)]
        else:
            k += 1
    onset = _onset(segments, y, bounds, full, warmup, judge)
    stopped, grown = _stop(segments, y, bounds, full, min_epochs)
    return Changes(tuple(segments), onset, stopped, grown)


def _onset(
    segments: list[Segment], y: np.ndarray, bounds: list[int], full: list[int], warmup: int, judge: Judge
) -> Segment | None:
    """The trailing leak when it starts late (see the module docstring), judged from its onset to the end."""
    k0 = len(segments)
    while k0 > 0 and segments[k0 - 1].verdict == "leak":
        k0 -= 1
    if not 0 < k0 < len(segments) or full[k0] < max(warmup, MIN_BEFORE_ONSET):
        return None
    lo, hi = bounds[k0], bounds[-1]
    union = judge(lo, hi, full[k0], full[-1] - 1)
    rise = union.slope * (union.last - union.first)
    climbed = y[-1] - float(np.max(y[:lo]))
    if union.verdict == "leak" and climbed >= 0.5 * rise and _gradual(y[lo:hi], rise):
        return union
    return None


def _stop(
    segments: list[Segment], y: np.ndarray, bounds: list[int], full: list[int], min_epochs: int
) -> tuple[Segment | None, float | None]:
    """The growth that stopped before a flat tail, and its fitted rise; (None, None) when there is none."""
    last = segments[-1]
    tail = last.last - last.first + 1
    if last.verdict != "flat" or len(segments) < 2 or tail < max(min_epochs, MIN_FLAT_FRACTION * full[-1]):
        return None, None
    k = len(segments) - 2
    while k >= 0 and segments[k].verdict != "leak":
        k -= 1
    if k < 0:
        return None, None
    grew = segments[k]
    rise = grew.slope * (grew.last - grew.first + 1)
    long_enough = full[k + 1] - full[k] >= MIN_BEFORE_ONSET
    if not long_enough or rise < MIN_STOPPED_BYTES or not _gradual(y[bounds[k] : bounds[k + 1]], rise):
        return None, None
    return grew, rise
