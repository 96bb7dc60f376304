"""One memory series of a run fitted as a verdict needs it: tracemalloc's own memory taken out, change points applied.

Traced runs.  tracemalloc keeps a record of every live traced block (about
50-70 bytes each) in the trainer's own memory, so a leak of many small objects
grows RSS several times faster traced than untraced (the seed's leak: about
100 MiB/epoch against 23.4).  The worker records those tables' size each epoch
(``tracer_bytes``), and the series that live in the trainer's memory (its RSS,
the tree's PSS and USS) are judged less it: the loop's growth, as untraced.
This is preferred to judging the Python heap, which cannot see native memory.
The trace points themselves run in a forked child and leave nothing in RSS
(:mod:`harness.worker.heap.child`).

Change points (:mod:`harness.growth.changepoint`): a late leak is a leak from
its onset (the fit after it decides; ``onset`` names the epoch), growth that
stopped before a flat tail is ``flat`` now and ``stop`` says how much it grew
first.  Warm-up detection is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.formatting import format_bytes, format_rate, format_size
from harness.growth.changepoint import Changes, Segment, change_points
from harness.growth.verdict import fit_column, verdict

TRACER_COLUMN = "tracer_bytes"
IN_TRAINER = ("rss_bytes", "tree_pss_bytes", "tree_uss_bytes")  # series that hold tracemalloc's tables


def traced(epochs: pd.DataFrame) -> bool:
    """True when the run recorded tracemalloc's own memory (a traced run of schema version 3)."""
    return TRACER_COLUMN in epochs.columns and bool(epochs[TRACER_COLUMN].notna().any())


def points(epochs: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of a column with a value, epochs strictly increasing, as floats."""
    table = pd.DataFrame(
        {
            "epoch": pd.to_numeric(epochs["epoch"], errors="coerce"),
            "value": pd.to_numeric(epochs[column], errors="coerce"),
        }
    ).dropna()
    table = table.drop_duplicates("epoch", keep="last").sort_values("epoch")
    return table["epoch"].to_numpy(float), table["value"].to_numpy(float)


def fit_measure(
    epochs: pd.DataFrame, column: str, min_bytes_per_epoch: float, min_epochs: int, per: str = "epoch"
) -> dict[str, Any]:
    """The fit of one series (see the module docstring): :func:`fit_column`'s dict, with change points."""
    less = column in IN_TRAINER and traced(epochs)
    if less:
        tracer = pd.to_numeric(epochs[TRACER_COLUMN], errors="coerce")
        epochs = epochs.assign(**{column: pd.to_numeric(epochs[column], errors="coerce") - tracer})
    fit = fit_column(epochs, column, min_bytes_per_epoch, min_epochs, per)
    if less:
        fit["less"] = TRACER_COLUMN
    x, y = points(epochs, column)
    if y.size >= 2 * min_epochs:
        apply_changes(
            fit,
            x,
            change_points(
                y, x, warmup=fit["warmup_epochs"], min_epochs=min_epochs, min_bytes_per_epoch=min_bytes_per_epoch
            ),
        )
    return fit


def _refit(fit: dict[str, Any], part: Segment, x: np.ndarray, reason: str) -> None:
    """The fit's numbers from a segment (on its own points), with ``reason``."""
    assert part.fit is not None
    fit.update(
        reason=reason,
        bytes_per_epoch=part.fit.slope,
        ci_low=part.fit.ci_low,
        ci_high=part.fit.ci_high,
        p_value=part.fit.p_value,
        n_epochs_used=int(np.count_nonzero((x >= part.first) & (x <= part.last))),
        first_epoch_used=part.first,
        fitted_last_bytes=part.fit.at(x[-1]),
    )


def apply_changes(fit: dict[str, Any], x: np.ndarray, changes: Changes) -> None:
    """Amend a fit with its change points: a late onset makes it a leak from there, a stop makes it flat."""
    threshold, least = fit["min_bytes_per_epoch"], fit["min_epochs"]
    fit["segments"] = [
        {"first": s.first, "last": s.last, "verdict": s.verdict, "bytes_per_epoch": s.slope} for s in changes.segments
    ]
    onset, grew, tail = changes.onset, changes.stopped, changes.segments[-1]
    if onset is not None and onset.fit is not None:
        fit["onset"] = onset.first
        fit["verdict"] = "leak"
        why = verdict(onset.fit, threshold, least)[1]
        _refit(fit, onset, x, f"growth starts at epoch {onset.first}; after it {why}")
    elif grew is not None and tail.fit is not None:
        fit["stop"] = {
            "epoch": grew.last,
            "first": grew.first,
            "bytes_per_epoch": grew.slope,
            "grown_bytes": changes.grown_bytes,
        }
        fit["verdict"] = "flat"
        why = verdict(tail.fit, threshold, least)[1]
        _refit(fit, tail, x, f"growth stopped at epoch {grew.last}; after it {why}")


def stop_text(stop: dict[str, Any]) -> str:
    """ "grew 516.0 KiB/epoch over epochs 1-30 (+15.1 MiB), then stopped"."""
    rate, grown = format_rate(stop["bytes_per_epoch"]), format_size(stop["grown_bytes"])
    return f"grew {rate} over epochs {stop['first']}-{stop['epoch']} (+{grown}), then stopped"


def tracing_distortion(epochs: pd.DataFrame, judged: dict[str, Any]) -> dict[str, Any] | None:
    """For a traced run: RSS as measured, tracemalloc's own growth, and a warning when they would mislead."""
    if not traced(epochs):
        return None
    raw = fit_column(epochs, "rss_bytes", judged["min_bytes_per_epoch"], judged["min_epochs"])
    tracer = fit_column(epochs, TRACER_COLUMN, judged["min_bytes_per_epoch"], judged["min_epochs"])
    own = tracer["bytes_per_epoch"] or 0.0
    warning = None
    if raw["verdict"] != judged["verdict"] or own > judged["min_bytes_per_epoch"]:
        measured = f"{raw['verdict']} {format_bytes(raw['bytes_per_epoch'] or 0.0, signed=True)}/epoch"
        warning = (
            f"tracing distorted RSS: tracemalloc's own tables grew {format_rate(own)} (RSS as measured: {measured}); "
            "the verdict judges RSS less them, as an untraced run would measure it"
        )
    return {"rss_measured": raw, "tracer_bytes_per_epoch": own, "warning": warning}
