"""What a reader accepts of what a run directory stores: meta.json's ``growth`` and ``script``, and trace.json.

Both are written by leakbench (:mod:`harness.growth`, :mod:`harness.worker.tracing`),
but a file on disk may be damaged or edited: each function raises ValueError
naming the first field that is not what every reader relies on, so a bad file
is one clear line instead of a traceback somewhere in a report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

VERDICTS = ("leak", "flat", "inconclusive")
# The numbers of a measure: each a finite number or null.
_MEASURE_NUMBERS = ("bytes_per_epoch", "ci_low", "ci_high", "p_value", "fitted_last_bytes", "min_bytes_per_epoch")
_MEASURE_COUNTS = ("warmup_epochs", "n_epochs_used")
_SITE_FIELDS = {"file": str, "line": int, "size_diff": int, "count_diff": int, "size": int, "count": int}
_TYPE_FIELDS = {"type": str, "count_diff": int, "count": int}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_measure(measure: Any, where: str) -> None:
    """One measure of a growth analysis: a verdict, its numbers (or nulls) and its epoch counts."""
    if not isinstance(measure, Mapping):
        raise ValueError(f"{where} must be an object, got {type(measure).__name__}")
    if measure.get("verdict") not in VERDICTS:
        raise ValueError(f"{where}.verdict must be one of {', '.join(VERDICTS)}, got {measure.get('verdict')!r}")
    for name in _MEASURE_NUMBERS:
        if measure.get(name) is not None and not _number(measure[name]):
            raise ValueError(f"{where}.{name} must be a finite number or null, got {measure[name]!r}")
    for name in _MEASURE_COUNTS:
        if name in measure and not _count(measure[name]):
            raise ValueError(f"{where}.{name} must be a whole number >= 0, got {measure[name]!r}")
    if not isinstance(measure.get("reason", ""), str):
        raise ValueError(f"{where}.reason must be text")


def check_growth(growth: Any) -> None:
    """meta.json's ``growth``: the headline measure, and the heap's and the projection when present."""
    check_measure(growth, "growth")
    if growth.get("heap") is not None:
        check_measure(growth["heap"], "growth.heap")
    projection = growth.get("projection")
    if projection is not None:
        if not isinstance(projection, Mapping):
            raise ValueError("growth.projection must be an object or null")
        for name, value in projection.items():
            if value is not None and not _count(value):
                raise ValueError(f"growth.projection.{name} must be a whole number >= 0 or null, got {value!r}")
    if growth.get("note") is not None and not isinstance(growth["note"], str):
        raise ValueError("growth.note must be text or null")


def check_script(script: Any) -> None:
    """meta.json's ``script``: a path or a module (text, exactly one of them) and its arguments (a list of text)."""
    if not isinstance(script, Mapping):
        raise ValueError(f"script must be an object, got {type(script).__name__}")
    path, module, args = script.get("path"), script.get("module"), script.get("args", [])
    if (path is None) == (module is None) or not isinstance(path if path is not None else module, str):
        raise ValueError("script must name a path or a module, as text, exactly one of them")
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ValueError("script.args must be a list of text")


def _rows(trace: Mapping[str, Any], key: str, fields: Mapping[str, type]) -> None:
    rows = trace.get(key) or []
    if not isinstance(rows, list):
        raise ValueError(f"trace.json {key} must be a list")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"trace.json {key}[{index}] must be an object")
        for name, kind in fields.items():
            value = row.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"trace.json {key}[{index}].{name} must be {kind.__name__}, got {value!r}")


def check_trace(trace: Any) -> None:
    """trace.json: an object whose sites, types and keepers have the fields the reports read."""
    if not isinstance(trace, Mapping):
        raise ValueError(f"trace.json must be an object, got {type(trace).__name__}")
    for name in ("baseline_epoch", "final_epoch", "heap_baseline_bytes", "heap_final_bytes"):
        if trace.get(name) is not None and not _count(trace[name]):
            raise ValueError(f"trace.json {name} must be a whole number >= 0, got {trace[name]!r}")
    _rows(trace, "sites", _SITE_FIELDS)
    _rows(trace, "types", _TYPE_FIELDS)
    keepers = trace.get("keepers") or []
    if not isinstance(keepers, list) or not all(isinstance(k, Mapping) for k in keepers):
        raise ValueError("trace.json keepers must be a list of objects")
    for index, keeper in enumerate(keepers):
        holder = keeper.get("holder")
        if holder is not None and not isinstance(holder, Mapping):
            raise ValueError(f"trace.json keepers[{index}].holder must be an object or null")
        chain = keeper.get("chain") or []
        if not isinstance(chain, list) or not all(isinstance(step, str) for step in chain):
            raise ValueError(f"trace.json keepers[{index}].chain must be a list of text")
