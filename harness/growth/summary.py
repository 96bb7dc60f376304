"""The ``growth`` dict of a run: every recorded memory series fitted, one of them judged.

A run records up to four memory series per epoch (records.MEASURE_COLUMNS):
the worker's own RSS (always), the Python heap (with --trace), and the process
tree's PSS and USS (schema version 2).  Each is fitted by
:func:`harness.growth.verdict.fit_column`; the one the run is judged on (its
``measure``: ``rss`` unless asked otherwise) makes the top level of the dict,
so every reader of a verdict finds it where it always was, and ``judged`` names
it.  ``series`` holds every fit by measure name, the judged one included.  The
tree's series are fitted when the run had children (or when judged): without
children they only repeat the worker's own memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.errors import UsageError
from harness.growth.native import native_growth
from harness.growth.series import fit_measure, tracing_distortion
from harness.growth.verdict import MEASURES, MIN_BYTES_PER_EPOCH, MIN_EPOCHS
from harness.records import DEFAULT_MEASURE, MEASURE_COLUMNS, WINDOWS

TREE_MEASURES = ("tree-pss", "tree-uss")


def had_children(epochs: pd.DataFrame) -> bool:
    """True when some epoch row counted a descendant of the worker."""
    return "children" in epochs.columns and bool((pd.to_numeric(epochs["children"], errors="coerce") > 0).any())


def check_measure(measure: str) -> str:
    """``measure`` if it names a series (rss, tree-pss, tree-uss, heap); UsageError quoting it otherwise."""
    if measure not in MEASURE_COLUMNS:
        raise UsageError(f"invalid measure {measure!r}: expected one of {', '.join(MEASURE_COLUMNS)}")
    return measure


def _missing(measure: str) -> str:
    if measure == "heap":
        return "measure heap needs a run recorded with --trace (the Python heap was not recorded)"
    return (
        f"measure {measure} needs the process tree's figures, which this run did not record "
        "(a run of schema version 1, or one that ended before the first reading)"
    )


def summarise_growth(
    epochs: pd.DataFrame,
    memory_cap_bytes: int | None = None,
    memory_total_bytes: int | None = None,
    *,
    measure: str = DEFAULT_MEASURE,
    min_bytes_per_epoch: float = MIN_BYTES_PER_EPOCH,
    min_epochs: int = MIN_EPOCHS,
    per: str = "epoch",
    schedule: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``growth`` dict of a run (JSON-ready) from its epochs.csv table, judged on ``measure``.

    ``per="window"`` when the table is a script's windows of samples (every fit then says "per window").
    ``schedule`` (a sweep's, in meta.json) makes the projection count the runs alongside: the run's share
    of the sweep's memory budget, and the machine's memory less the caps of the runs going when it started.
    """
    check_measure(measure)
    for column in ("epoch", "rss_bytes"):
        if column not in epochs.columns:
            raise UsageError(f"the epochs table has no {column!r} column; expected the columns of epochs.csv")
    children = had_children(epochs)
    series: dict[str, dict[str, Any]] = {}
    for name, column in MEASURE_COLUMNS.items():
        if column not in epochs.columns or (name in TREE_MEASURES and not children and name != measure):
            continue
        fit = fit_measure(epochs, column, min_bytes_per_epoch, min_epochs, per)
        if name == "rss" or fit["n_epochs_used"] + fit["warmup_epochs"] >= 2:
            series[name] = fit  # others need values: the heap when traced, the tree when recorded
    if measure not in series:
        raise UsageError(_missing(measure))
    growth = dict(series[measure])
    heap = series.get("heap")
    growth["judged"] = measure
    growth["heap"] = heap
    growth["series"] = series
    growth["native_growth"], growth["note"] = native_growth(epochs, series["rss"], heap)
    growth["tracing"] = tracing_distortion(epochs, series["rss"])
    growth["projection"] = _projection(growth, memory_cap_bytes, memory_total_bytes, schedule)
    if "tree-pss" in series:  # the figure the cap applies to: where it reaches the cap, judged or not
        series["tree-pss"]["projection"] = _projection(
            series["tree-pss"], memory_cap_bytes, memory_total_bytes, schedule
        )
    return growth


def summarise_run(epochs: pd.DataFrame, meta: Mapping[str, Any], measure: str | None = None) -> dict[str, Any]:
    """:func:`summarise_growth` with the run's cap and machine memory, judged on ``measure`` (default: the run's)."""
    host = meta.get("host") or {}
    chosen = measure or meta.get("measure") or DEFAULT_MEASURE
    per = "window" if meta.get("epochs_from") == WINDOWS else "epoch"
    cap, total = meta.get("memory_cap_bytes"), host.get("memory_total_bytes")
    return summarise_growth(epochs, cap, total, measure=chosen, per=per, schedule=meta.get("schedule"))


def _projection(
    judged: dict[str, Any],
    memory_cap_bytes: int | None,
    memory_total_bytes: int | None,
    schedule: Mapping[str, Any] | None = None,
) -> dict[str, int | None] | None:
    """Epochs at which the fitted line reaches the cap, the sweep's share and the machine's memory, for a leak."""
    if judged["verdict"] != "leak":
        return None
    share, alongside = (schedule or {}).get("memory_share_bytes"), (schedule or {}).get("alongside_caps_bytes") or 0
    slope, last = judged["bytes_per_epoch"], judged["last_epoch"]
    at_last = judged["fitted_last_bytes"]

    def reach(limit: int | None) -> int | None:
        if not limit:
            return None
        return max(1, last + math.ceil((limit - at_last) / slope))

    free = memory_total_bytes - alongside if memory_total_bytes and alongside else memory_total_bytes
    return {
        "memory_cap_bytes": memory_cap_bytes,
        "cap_epoch": reach(memory_cap_bytes),
        "memory_total_bytes": memory_total_bytes,
        "memory_total_epoch": reach(free),
    } | ({"memory_share_bytes": share, "share_epoch": reach(share), "alongside_bytes": alongside} if share else {})


def measure_label(measure: str) -> str:
    """ "tree PSS" for "tree-pss": how a measure name reads in sentences."""
    return MEASURES[MEASURE_COLUMNS[check_measure(measure)]]
