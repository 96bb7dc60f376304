"""Compare a baseline with a candidate (two runs or two sets of runs): what changed, and is it beyond the noise.

Pure: per-run tables (:func:`harness.report.run_table.run_table`) in, a comparison DataFrame out.

How the noise is judged, per metric (the ``noise`` column says which rule applied):

- repeats (either side has two or more runs): the change counts when it exceeds
  twice the standard error of the difference of the means,
  2 * sqrt(sd_b**2 / n_b + sd_c**2 / n_c); a side with a single run borrows the
  other side's standard deviation (the same run-to-run spread is assumed);
- single runs, growth per epoch: the two runs' 95 % intervals of the trend,
  sqrt(hw_b**2 + hw_c**2) with hw the interval's half-width;
- single runs, other metrics: a fixed tolerance (``DEFAULT_TOLERANCE``), said so
  in the table, because one run says nothing about its own spread.

Under every rule a change must also reach the metric's floor (``FLOOR``), the
smallest change that matters: the growth analysis's leak threshold per epoch
(:data:`harness.growth.MIN_BYTES_PER_EPOCH`), 1 MiB of peak RSS, 5 % of
speed; without it a set of identical repeats (spread zero) would flag any change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.formatting import format_bytes, format_percent, format_speed
from harness.growth import MIN_BYTES_PER_EPOCH
from harness.records import COMPLETED

MIB = 1024 * 1024
# Group runs by what they are, so two results directories compare like with like.
GROUP_KEYS = ("variant", "model", "leak")


@dataclass(frozen=True)
class Metric:
    """A compared quantity: its column in the run table, direction, and how to show it."""

    column: str
    name: str
    higher_is_better: bool
    kind: str  # "bytes", "bytes/epoch", "rate", "fraction" or "number"


METRICS: tuple[Metric, ...] = (
    Metric("bytes_per_epoch", "growth per epoch", False, "bytes/epoch"),
    Metric("peak_rss_bytes", "peak RSS", False, "bytes"),
    Metric("epochs_per_s", "epochs/s", True, "rate"),
    Metric("accuracy", "final accuracy", True, "fraction"),
    Metric("correct_prob", "final correct_prob", True, "fraction"),
    Metric("loss", "final loss", False, "number"),
)

# Smallest change that matters: absolute, and relative to the baseline (the larger of the two applies).
FLOOR_ABSOLUTE = {
    "bytes_per_epoch": float(MIN_BYTES_PER_EPOCH),
    "peak_rss_bytes": 1.0 * MIB,
    "epochs_per_s": 0.0,
    "accuracy": 1e-9,
    "correct_prob": 1e-9,
    "loss": 1e-9,
}
FLOOR_RELATIVE = {"epochs_per_s": 0.05}
# Single runs on both sides: tolerances assumed for lack of repeats, relative to the baseline.  Speed on a
# shared machine is noisy; peak RSS moves with the allocator.  The metrics of one seed are deterministic,
# so for them any change beyond rounding (the absolute floor) is real.
DEFAULT_TOLERANCE = {"peak_rss_bytes": 0.05, "epochs_per_s": 0.10}

NOISE_LEGEND = (
    "noise from: '2 s.e., n+m runs' = twice the standard error of the difference of the means of repeated runs; "
    "'trend CIs' = the two runs' 95% growth intervals; 'assumed N%' = a tolerance for single runs; "
    "'exact' = metrics of one seed are deterministic. Changes below "
    f"{MIN_BYTES_PER_EPOCH // 1024} KiB/epoch (the leak threshold), 1 MiB peak RSS or 5% speed never count."
)
COLUMNS = [
    "group",
    "metric",
    "baseline",
    "candidate",
    "change",
    "noise",
    "noise from",
    "judgement",
]


@dataclass(frozen=True)
class Change:
    """One metric of one group compared: the numbers and the judgement."""

    group: str
    metric: Metric
    baseline: float
    candidate: float
    n_baseline: int
    n_candidate: int
    noise: float
    noise_rule: str

    @property
    def change(self) -> float:
        """Candidate mean minus baseline mean."""
        return self.candidate - self.baseline

    @property
    def beyond_noise(self) -> bool:
        """Whether the change is larger than the noise (NaN never is)."""
        return not math.isnan(self.change) and abs(self.change) > self.noise

    @property
    def worse(self) -> bool:
        """Whether the change goes the wrong way for this metric."""
        return self.change < 0 if self.metric.higher_is_better else self.change > 0

    @property
    def regression(self) -> bool:
        """Worse, and beyond the noise."""
        return self.beyond_noise and self.worse

    @property
    def judgement(self) -> str:
        """``worse``, ``better`` or ``within noise``."""
        if not self.beyond_noise:
            return "within noise"
        return "worse" if self.worse else "better"


def compare_tables(baseline: pd.DataFrame, candidate: pd.DataFrame) -> list[Change]:
    """Every metric of every group present on both sides, baseline against candidate run tables.

    With one group on each side the two are compared whatever they are (a leaky run
    against its fix, say); otherwise groups are matched by variant, model and leak.
    """
    pairs = _pairs(baseline, candidate)
    return [_change(name, metric, b, c) for name, b, c in pairs for metric in METRICS]


def unmatched_groups(baseline: pd.DataFrame, candidate: pd.DataFrame) -> list[str]:
    """Groups found on one side only (not compared), as ``"baseline only: numpy CNN none"``."""
    left, right = _groups(baseline), _groups(candidate)
    if len(left) == 1 and len(right) == 1:
        return []
    return [f"baseline only: {k}" for k in left if k not in right] + [
        f"candidate only: {k}" for k in right if k not in left
    ]


def _groups(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The table split by variant, model and leak, named ``"numpy CNN none"``."""
    return {" ".join(str(k) for k in key): rows for key, rows in table.groupby(list(GROUP_KEYS), sort=False)}


def _pairs(baseline: pd.DataFrame, candidate: pd.DataFrame) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """Matched (group name, baseline rows, candidate rows)."""
    left, right = _groups(baseline), _groups(candidate)
    if len(left) == 1 and len(right) == 1:
        (name_b, rows_b), (name_c, rows_c) = (
            next(iter(left.items())),
            next(iter(right.items())),
        )
        return [(name_b if name_b == name_c else f"{name_b} -> {name_c}", rows_b, rows_c)]
    return [(name, left[name], right[name]) for name in left if name in right]


def _change(group: str, metric: Metric, baseline: pd.DataFrame, candidate: pd.DataFrame) -> Change:
    """One metric compared with the noise rule of the module docstring."""
    b = baseline[metric.column].dropna().to_numpy(float)
    c = candidate[metric.column].dropna().to_numpy(float)
    mean_b = float(b.mean()) if b.size else math.nan
    mean_c = float(c.mean()) if c.size else math.nan
    if b.size >= 2 or c.size >= 2:
        sd_b = float(np.std(b, ddof=1)) if b.size >= 2 else math.nan
        sd_c = float(np.std(c, ddof=1)) if c.size >= 2 else math.nan
        sd_b = sd_c if math.isnan(sd_b) else sd_b
        sd_c = sd_b if math.isnan(sd_c) else sd_c
        noise = 2 * math.sqrt(sd_b**2 / max(b.size, 1) + sd_c**2 / max(c.size, 1))
        rule = f"2 s.e., {b.size}+{c.size} runs"
    elif metric.column == "bytes_per_epoch":
        noise = math.sqrt(_half_width(baseline) ** 2 + _half_width(candidate) ** 2)
        rule = "trend CIs"
    elif metric.column in DEFAULT_TOLERANCE:
        noise = DEFAULT_TOLERANCE[metric.column] * abs(mean_b)
        rule = f"assumed {DEFAULT_TOLERANCE[metric.column]:.0%}"
    else:
        noise, rule = 0.0, "exact"
    floor = max(
        FLOOR_ABSOLUTE[metric.column],
        FLOOR_RELATIVE.get(metric.column, 0.0) * abs(mean_b),
    )
    if not noise >= floor:  # also replaces a NaN noise
        noise = floor
    return Change(group, metric, mean_b, mean_c, int(b.size), int(c.size), noise, rule)


def _half_width(rows: pd.DataFrame) -> float:
    """Half the width of a single run's growth interval (0 when it has none)."""
    width = float((rows["ci_high"] - rows["ci_low"]).iloc[0]) / 2
    return 0.0 if math.isnan(width) else width


def regressions(changes: Sequence[Change]) -> list[Change]:
    """The changes that are worse beyond the noise."""
    return [c for c in changes if c.regression]


def comparison_table(changes: Sequence[Change]) -> pd.DataFrame:
    """The changes as display strings, one row per group and metric."""
    rows = [
        [
            c.group,
            c.metric.name,
            _value(c.metric, c.baseline) + _mean_of(c.n_baseline),
            _value(c.metric, c.candidate) + _mean_of(c.n_candidate),
            _delta(c.metric, c.change, c.baseline),
            f"+/-{_delta(c.metric, c.noise, math.nan).lstrip('+')}",
            c.noise_rule,
            c.judgement,
        ]
        for c in changes
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _mean_of(n: int) -> str:
    """`` (mean of 3)`` for repeated runs, nothing for one."""
    return f" (mean of {n})" if n > 1 else ""


def _value(metric: Metric, value: float) -> str:
    """A metric's value in its unit."""
    if math.isnan(value):
        return "-"
    if metric.kind == "bytes/epoch":
        return format_bytes(value, signed=True) + "/epoch"
    if metric.kind == "bytes":
        return format_bytes(value)
    if metric.kind == "rate":
        return format_speed(value)
    if metric.kind == "fraction":
        return format_percent(value)
    return f"{value:.4g}"


def _delta(metric: Metric, change: float, baseline: float) -> str:
    """The change in the metric's unit, and relative to the baseline where that means something."""
    if math.isnan(change):
        return "-"
    if metric.kind in ("bytes", "bytes/epoch"):
        text = format_bytes(change, signed=True)
    elif metric.kind == "fraction":
        text = f"{100 * change:+.2f} points"
    elif metric.kind == "rate":
        text = f"{change:+.3g}"
    else:
        text = f"{change:+.4g}"
    if metric.kind in ("bytes", "rate") and baseline and not math.isnan(baseline):
        text += f" ({change / abs(baseline):+.1%})"
    return text


def describe(change: Change) -> str:
    """One line: ``"+57 B/epoch -> +5.0 MiB/epoch (+5.0 MiB, beyond +/-6.2 KiB)"``."""
    return (
        f"{_value(change.metric, change.baseline)} -> {_value(change.metric, change.candidate)} "
        f"({_delta(change.metric, change.change, change.baseline)}, noise +/-"
        f"{_delta(change.metric, change.noise, math.nan).lstrip('+')})"
    )


def caveats(baseline: pd.DataFrame, candidate: pd.DataFrame) -> list[str]:
    """What a reader should know before trusting the table: unmatched groups, unequal lengths, early stops."""
    notes = unmatched_groups(baseline, candidate)
    for name, b, c in _pairs(baseline, candidate):
        done_b, done_c = sorted(set(b["epochs_done"])), sorted(set(c["epochs_done"]))
        if done_b != done_c:
            notes.append(
                f"{name}: final metrics are taken after different epochs "
                f"(baseline {_list(done_b)}, candidate {_list(done_c)})"
            )
        pers = sorted(set(b.get("per", ["epoch"])) | set(c.get("per", ["epoch"])))
        if "window" in pers:  # a script that marks no epochs is judged per window of its samples
            mixed = " on one side and per epoch on the other: the two do not compare" if len(pers) > 1 else ""
            notes.append(f"{name}: growth is per window of samples{mixed}")
    for side, table in (("baseline", baseline), ("candidate", candidate)):
        unfinished = table[table["status"] != COMPLETED]
        for row in unfinished.itertuples(index=False):
            notes.append(f"{side} run {row.run_id} ended {row.status} after {row.epochs_done} epochs")
    return notes


def _list(values: Sequence[int]) -> str:
    """``"12"`` or ``"12, 500"``."""
    return ", ".join(str(v) for v in values)
