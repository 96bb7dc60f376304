"""The lines that kept resident memory in a run profiled with ``--lines``: what ``explain`` and the plugin print.

Pure: lines.json (and trace.json) as dicts in, text out.  A line *grows* when
what it kept (:mod:`harness.worker.lines.ledger`) comes to at least the verdict's
threshold per epoch (:data:`harness.growth.MIN_BYTES_PER_EPOCH`) and rose in at
least a third of the epochs: a line that kept a cache once is not a leak.
Whether the growth is Python objects or native memory is told from the traced
heap when the run was traced, else from Python's small-object blocks: each
block holds 16 to 512 bytes, so N blocks can explain at most N x 512 bytes (an
object larger than that is malloc'd like native memory: only --trace sees it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from harness.formatting import format_bytes, format_rate, format_site, plural, text_table
from harness.growth import MIN_BYTES_PER_EPOCH, NATIVE_SHARE

TOP = 10  # growing lines shown
SIDE_BY_SIDE = 5  # rows of the two attributions shown beside each other
GROWING_SHARE = 1 / 3  # of the epochs in which a growing line's kept bytes must have risen
MAX_BLOCK = 512  # bytes: the largest block of Python's small-object allocator (larger objects use malloc)
MIN_BLOCK = 16  # bytes: its smallest block
PATH_WIDTH = 48
SOURCE_WIDTH = 56


def growing_lines(lines: dict[str, Any], min_bytes_per_epoch: float = MIN_BYTES_PER_EPOCH) -> list[dict[str, Any]]:
    """The lines whose kept RSS grows, most per epoch first."""
    needed = max(1, math.ceil(GROWING_SHARE * lines.get("epochs", 0)))
    rows = [
        row
        for row in lines.get("lines") or []
        if row["kept_per_epoch"] >= min_bytes_per_epoch and row["grew_epochs"] >= needed
    ]
    return sorted(rows, key=lambda row: row["kept_per_epoch"], reverse=True)


def _site(row: dict[str, Any], root: str | None, width: int = PATH_WIDTH) -> str:
    return format_site(str(row["file"]), row["line"], root, width)


def _source(row: dict[str, Any]) -> str:
    text = str(row.get("source") or "")
    return text if len(text) <= SOURCE_WIDTH else text[: SOURCE_WIDTH - 3] + "..."


def lines_text(
    lines: dict[str, Any], trace: dict[str, Any] | None = None, root: str | None = None, top: int = TOP
) -> str:
    """The line profile: the growing lines' table, where the growth sits, and the trace's sites beside it."""
    functions = ", ".join(str(f.get("target")) for f in lines.get("functions") or [])
    if not lines.get("epochs"):
        return (
            f"Line profile ({functions}): the run ended before its baseline epoch {lines.get('baseline_epoch')}, "
            "so no line was accounted; run it for more epochs."
        )
    first, last = lines["baseline_epoch"], lines["final_epoch"]
    interim = "" if lines.get("final", True) else ", interim: the run ended before its final copy"
    title = f"Lines that kept resident memory, epochs {first} -> {last} (line profile of RSS: {functions}{interim}):"
    growing = growing_lines(lines)
    epochs = lines["epochs"]
    if not growing:
        threshold = format_rate(MIN_BYTES_PER_EPOCH)
        body = f"  no line kept growing (at least {threshold} in a third of the {plural(epochs, 'epoch')})"
    else:
        rows = [
            [
                _site(row, root),
                format_bytes(row["kept_per_epoch"], signed=True),
                f"{row['grew_epochs']} of {epochs}",
                format_bytes(row["increment_per_epoch"], signed=True),
                f"{row['occurrences']:,}",
                _source(row),
            ]
            for row in growing[:top]
        ]
        headers = ["line", "kept/epoch", "grew in", "increment/epoch", "runs", "source"]
        body = text_table(headers, rows, right=[False, True, True, True, True, False], indent=2)
    parts = [title + "\n" + body, _totals(lines, growing)]
    if growing:
        parts.append(_where_it_sits(lines, trace, sum(row["kept_per_epoch"] for row in growing)))
    if growing and trace is not None and trace.get("sites"):
        parts.append(side_by_side(growing, trace, root))
    return "\n".join(part for part in parts if part)


def _totals(lines: dict[str, Any], growing: Sequence[dict[str, Any]]) -> str:
    """How the run's RSS change since the baseline splits: growing lines, other lines, outside the profiled lines."""
    if lines.get("rss_baseline_bytes") is None or lines.get("rss_final_bytes") is None:
        return ""
    epochs = lines["epochs"]
    change = (lines["rss_final_bytes"] - lines["rss_baseline_bytes"]) / epochs
    at_growing = sum(row["kept_per_epoch"] for row in growing)
    outside = (lines.get("outside") or {}).get("kept_bytes", 0) / epochs
    cost = lines.get("reading_cost_us")
    readings = f"; RSS read {lines.get('readings', 0):,} times, ~{cost:g} us each" if cost is not None else ""
    text = (
        f"  RSS {format_bytes(change, signed=True)}/epoch over the {plural(epochs, 'epoch')}: "
        f"{format_bytes(at_growing, signed=True)} kept at these lines, {format_bytes(outside, signed=True)} "
        f"outside the profiled lines{readings}."
    )
    # A flat run's few bytes between epochs are noise, not a misattribution worth a paragraph.
    if change >= MIN_BYTES_PER_EPOCH and outside > NATIVE_SHARE * change:
        text += (
            "\n  Much of it grew outside the profiled lines, between epochs (the harness; with --trace, the "
            "tracer's snapshots): memory freed there is reused later without RSS rising at the line that reuses "
            "it. Profile lines in a run without --trace for the cleanest attribution."
        )
    return text


def _where_it_sits(lines: dict[str, Any], trace: dict[str, Any] | None, kept: float) -> str:
    """Native memory or Python objects: the traced heap when traced, else the bound of Python's blocks."""
    heap = _heap_per_epoch(trace)
    if heap is not None:
        if heap < NATIVE_SHARE * kept:
            return (
                f"  Native memory: the traced Python heap grew {format_rate(heap)} of these lines' "
                f"{format_rate(kept)}; the rest is memory tracemalloc cannot see (C extensions, ctypes or libc "
                "mallocs, JIT-compiled code, allocator fragmentation)."
            )
        return f"  Python objects: the traced Python heap grew {format_rate(heap)} (see the allocation sites)."
    first, last = lines.get("py_blocks_baseline"), lines.get("py_blocks_final")
    if first is None or last is None:
        return ""
    blocks = max(0.0, (last - first) / lines["epochs"])
    most = blocks * MAX_BLOCK
    grew = f"Python's small objects grew {blocks:,.0f} blocks/epoch, at most {format_rate(most)}"
    if most < NATIVE_SHARE * kept:
        return (
            f"  Not Python objects: {grew}. The growth is native memory (C extensions, ctypes or libc mallocs, "
            "JIT-compiled code) or large buffers (arrays, long lists); --trace tells which."
        )
    if most < kept:
        return (
            f"  At least {format_rate(kept - most)} ({(kept - most) / kept:.0%}) is outside Python's small objects "
            f"({grew}): native memory or large buffers; --trace tells which."
        )
    return (
        f"  Python objects, likely: {grew} (at least {format_rate(blocks * MIN_BLOCK)}); --trace shows where they "
        "are allocated and what keeps them alive."
    )


def _heap_per_epoch(trace: dict[str, Any] | None) -> float | None:
    if not trace or trace.get("heap_final_bytes") is None or trace.get("heap_baseline_bytes") is None:
        return None
    epochs = (trace.get("final_epoch") or 0) - (trace.get("baseline_epoch") or 0)
    return (trace["heap_final_bytes"] - trace["heap_baseline_bytes"]) / epochs if epochs > 0 else None


def side_by_side(growing: Sequence[dict[str, Any]], trace: dict[str, Any], root: str | None) -> str:
    """The line profile's growing lines and tracemalloc's growing sites, rank by rank, per epoch."""
    epochs = (trace.get("final_epoch") or 0) - (trace.get("baseline_epoch") or 0)
    sites = [site for site in trace.get("sites") or [] if site["size_diff"] > 0]
    rows = []
    for rank in range(min(SIDE_BY_SIDE, max(len(growing), len(sites)))):
        line = growing[rank] if rank < len(growing) else None
        site = sites[rank] if rank < len(sites) else None
        rows.append(
            [
                str(rank + 1),
                format_bytes(line["kept_per_epoch"], signed=True) if line else "",
                _site(line, root) if line else "",
                format_bytes(site["size_diff"] / max(epochs, 1), signed=True) if site else "",
                _site(site, root) if site else "",
            ]
        )
    headers = ["#", "RSS/epoch", "line profile (RSS kept)", "heap/epoch", "tracemalloc (Python heap)"]
    title = "The two attributions side by side (a line of the profiled functions; tracemalloc's allocating line):"
    return title + "\n" + text_table(headers, rows, right=[True, True, False, True, False], indent=2)


def top_lines_summary(lines: dict[str, Any] | None, root: str | None = None, top: int = 3) -> list[str]:
    """One line per top growing line, for a guard's failure message; empty when none grows."""
    if not lines or not lines.get("epochs"):
        return []
    return [
        f"{format_bytes(row['kept_per_epoch'], signed=True)}/epoch at {_site(row, root)}: {_source(row)}"
        for row in growing_lines(lines)[:top]
    ]
