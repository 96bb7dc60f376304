"""What a reader accepts of what a run directory stores: meta.json's ``growth`` and ``script``, trace.json, lines.json.

All are written by leakbench (:mod:`harness.growth`, :mod:`harness.worker.tracing`, :mod:`harness.worker.lines`),
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
LINES_VERSIONS = (1,)  # the lines.json schema versions this leakbench reads
_LINE_FIELDS = {
    "file": str,
    "line": int,
    "function": str,
    "source": str,
    "occurrences": int,
    "increment_bytes": int,
    "kept_bytes": int,
    "grew_epochs": int,
}
_LINE_RATES = ("increment_per_epoch", "kept_per_epoch")


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


def _rows(trace: Mapping[str, Any], key: str, fields: Mapping[str, type], file: str = "trace.json") -> None:
    rows = trace.get(key) or []
    if not isinstance(rows, list):
        raise ValueError(f"{file} {key} must be a list")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"{file} {key}[{index}] must be an object")
        for name, kind in fields.items():
            value = row.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"{file} {key}[{index}].{name} must be {kind.__name__}, got {value!r}")


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


def check_lines(lines: Any) -> None:
    """lines.json: a known schema version, its epoch counts, and lines with the fields ``explain`` reads."""
    if not isinstance(lines, Mapping):
        raise ValueError(f"lines.json must be an object, got {type(lines).__name__}")
    version = lines.get("schema_version")
    if isinstance(version, bool) or version not in LINES_VERSIONS:
        raise ValueError(f"lines.json has schema_version {version!r}; this leakbench reads 1: upgrade leakbench")
    for name in ("baseline_epoch", "epochs", "readings"):
        if not _count(lines.get(name, 0)):
            raise ValueError(f"lines.json {name} must be a whole number >= 0, got {lines.get(name)!r}")
    for name in ("final_epoch", "rss_baseline_bytes", "rss_final_bytes", "py_blocks_baseline", "py_blocks_final"):
        if lines.get(name) is not None and not _count(lines[name]):
            raise ValueError(f"lines.json {name} must be a whole number >= 0 or null, got {lines[name]!r}")
    if lines.get("reading_cost_us") is not None and not _number(lines["reading_cost_us"]):
        raise ValueError(
            f"lines.json reading_cost_us must be a finite number or null, got {lines['reading_cost_us']!r}"
        )
    _rows(lines, "lines", _LINE_FIELDS, "lines.json")
    for index, row in enumerate(lines.get("lines") or []):
        for name in _LINE_RATES:
            if not _number(row.get(name)):
                raise ValueError(f"lines.json lines[{index}].{name} must be a finite number, got {row.get(name)!r}")
    _rows(lines, "functions", {"target": str}, "lines.json")
    outside = lines.get("outside") or {}
    if not isinstance(outside, Mapping) or not all(
        _number(outside.get(k, 0)) for k in ("increment_bytes", "kept_bytes")
    ):
        raise ValueError("lines.json outside must be an object of increment_bytes and kept_bytes")
