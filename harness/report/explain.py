"""Render a run's growth verdict and trace as text tables (pure formatting: dicts in, text out)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from harness.formatting import format_bytes, format_p, format_rate_ci, format_site, format_size, plural, text_table
from harness.growth import MEASURES, TREE_MEASURES, reaches
from harness.growth.series import stop_text
from harness.records import WINDOWS
from harness.report.lines import lines_text
from harness.scripts import Script

TOP = 10  # rows of each trace table shown; trace.json keeps 25
NATIVE_HINT = (
    "No trace, and the growth is native memory (RSS grows, Python's small objects do not): --trace would "
    "not see it, since tracemalloc traces only Python's allocator. Re-run with --lines, where your leakbench "
    "has it, to see the lines whose native allocations grew; with --trace the sites name NumPy arrays' lines."
)
PATH_WIDTH = 60  # longer site paths keep their tail, which names the file


def explain_text(
    meta: dict[str, Any],
    growth: dict[str, Any],
    trace: dict[str, Any] | None,
    root: str | None = None,
    top: int = TOP,
    lines: dict[str, Any] | None = None,
) -> str:
    """The whole ``explain`` report: run, trend table, reasons, projection, the line profile and the trace tables."""
    parts = [_header(meta), _trend_table(growth), _reasons(growth)]
    if lines is not None:
        parts.append(lines_text(lines, trace, root, top))
    if trace is None and meta.get("trace") and meta.get("epochs_from") == WINDOWS:
        parts.append(
            "No trace: the tracer takes its baseline after the 3rd epoch or window, and the script ended before "
            "it; a script that marks no epochs is traced window by window when run with --window SECONDS."
        )
    elif trace is None and meta.get("trace"):
        parts.append(
            "No trace: the run was traced but ended before its baseline epoch, so there is nothing to compare; "
            "run it for more epochs to see which lines and object types the growth comes from."
        )
    elif trace is None and growth.get("native_growth"):
        parts.append(NATIVE_HINT)
    elif trace is None:
        parts.append("No trace: re-run with --trace to see which lines and object types the growth comes from.")
    else:
        parts.append(sites_table(trace, root, top, per="window" if meta.get("epochs_from") == WINDOWS else "epoch"))
        parts.append(keepers_text(trace, root))
        parts.append(types_table(trace, top))
        parts.append(threads_text(trace))
    return "\n\n".join(part for part in parts if part) + "\n"


def _header(meta: dict[str, Any]) -> str:
    """ "run <id>" and one line naming variant, leak, seed, epochs and status (a script: its command, its epochs)."""
    leak = meta.get("leak") or "none"
    done, planned = meta.get("epochs_done", "?"), meta.get("epochs_planned", "?")
    script = meta.get("script")
    if script is not None:
        command = " ".join(shlex.quote(part) for part in Script.from_dict(script).command())
        if meta.get("epochs_from") == WINDOWS:
            epochs = f"{plural(int(done or 0), 'window')} of {meta.get('window_s'):g} s (it marks no epochs)"
        else:
            epochs = f"{plural(int(done or 0), 'epoch')} marked"
        return f"run {meta.get('run_id', '?')}\n  script: python {command}: {epochs}, {meta.get('status', '?')}"
    return (
        f"run {meta.get('run_id', '?')}\n"
        f"  variant {meta.get('variant', '?')}, leak {leak}, seed {meta.get('seed', '?')}: "
        f"{done} of {planned} epochs, {meta.get('status', '?')}"
    )


def _series(growth: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, fit) of every series: the worker's RSS, the tree's PSS and USS when it had children, the heap.

    The judged one is marked when there are several; a growth dict stored before
    the tree was recorded has the judged series (RSS) and the heap only.
    """
    series = growth.get("series")
    if not series:
        return [(MEASURES.get(m["measure"], m["measure"]), m) for m in (growth, growth.get("heap")) if m is not None]
    judged = growth.get("judged", "rss")
    # Marked only where it could be mistaken: beside the tree's series, or when it is not the worker's RSS.
    mark = judged != "rss" or any(name in TREE_MEASURES for name in series)
    shown = []
    for name, fit in series.items():
        label = MEASURES.get(fit["measure"], fit["measure"])
        shown.append((f"{label} (judged)" if name == judged and mark else label, fit))
    return shown


def _trend_table(growth: dict[str, Any]) -> str:
    """One row per measured memory: verdict, rate, CI, p, warm-up, epochs fitted."""
    rows = []
    for name, measure in _series(growth):
        if measure["bytes_per_epoch"] is None:
            rows.append([name, measure["verdict"], "-", "-", "-", str(measure["warmup_epochs"]), "-"])
            continue
        rate, ci = format_rate_ci(
            measure["bytes_per_epoch"],
            measure["ci_low"],
            measure["ci_high"],
            signed=True,
            per=measure.get("per", "epoch"),
        )
        first, last = measure["first_epoch_used"], measure["last_epoch"]
        rows.append(
            [
                name,
                measure["verdict"],
                rate,
                ci,
                format_p(measure["p_value"]),
                str(measure["warmup_epochs"]),
                f"{first}-{last} ({measure['n_epochs_used']})",
            ]
        )
    level = f"{growth.get('confidence', 0.95):.0%} CI"
    per = growth.get("per", "epoch")
    return _table(
        ["memory", "verdict", "growth", level, "p", "warm-up", f"{per}s fitted"],
        rows,
        right=[False, False, True, True, True, True, False],
    )


def _reasons(growth: dict[str, Any]) -> str:
    """Why each verdict, the projection for a leak, and the native-memory note."""
    lines = [f"{name}: {measure['verdict']}: {measure['reason']}." for name, measure in _series(growth)]
    where = reaches(growth.get("projection"), growth.get("per", "epoch"))
    if where:
        lines.append(f"At this rate {MEASURES.get(growth.get('measure', ''), 'memory')} reaches {where}.")
    if growth.get("onset") is not None:
        lines.append(f"Onset: flat until epoch {growth['onset'] - 1}, growing from epoch {growth['onset']}.")
    if growth.get("stop"):
        lines.append(f"Stop: memory {stop_text(growth['stop'])} at epoch {growth['stop']['epoch']}.")
    if growth.get("note"):
        lines.append(f"Note: {growth['note']}.")
    warning = (growth.get("tracing") or {}).get("warning")
    if warning:
        lines.append(f"Warning: {warning}.")
    return "\n".join(lines)


def sites_table(trace: dict[str, Any], root: str | None = None, top: int = TOP, per: str = "epoch") -> str:
    """Title and table of the allocation sites whose traced memory grew most (``per``: epoch, or window)."""
    sites = trace.get("sites") or []
    title = (
        f"Allocation sites that grew most, {per} {trace.get('baseline_epoch')} -> {trace.get('final_epoch')} "
        f"(tracemalloc{'' if trace.get('final', True) else ', interim: the run ended before its final trace'}):"
    )
    if not sites:
        return title + "\n  none grew"
    rows = [
        [
            _site(row, root),
            format_bytes(row["size_diff"], signed=True),
            _signed(f"{row['count_diff']:,}", row["count_diff"]),
            format_size(row["size"]),
            f"{row['count']:,}",
        ]
        for row in sites[:top]
    ]
    body = _table(["site", "+size", "+blocks", "size", "blocks"], rows, right=[False, True, True, True, True])
    heap = ""
    if trace.get("heap_baseline_bytes") is not None and trace.get("heap_final_bytes") is not None:
        change = trace["heap_final_bytes"] - trace["heap_baseline_bytes"]
        heap = (
            f"\n  traced heap {format_size(trace['heap_baseline_bytes'])} -> {format_size(trace['heap_final_bytes'])}"
            f" ({format_bytes(change, signed=True)})"
        )
    return title + heap + "\n" + body + _stack(sites[0], root)


def _stack(row: dict[str, Any], root: str | None) -> str:
    """The largest traceback of the top site, most recent frame first, when the trace kept one."""
    frames = row.get("stack") or []
    if not frames:
        return ""
    lines = []
    for frame in frames:
        file, _, line = str(frame).rpartition(":")
        lines.append("    " + _site({"file": file, "line": line}, root))
    return "\n  top site's largest traceback, most recent call first:\n" + "\n".join(lines)


def _holder(holder: dict[str, Any] | None, root: str | None) -> str:
    """ "local `outcomes` of Loop._epochs_from at lists.py:125", or why the chain ended without one."""
    if holder is None:
        return "the loop object (held by the worker)"
    if not holder.get("file") and holder.get("text"):  # atexit, thread-local storage, nothing the gc can see
        return str(holder["text"])
    if holder["kind"] == "global":
        return f"module-level `{holder['name']}` (a registry that outlives the loop)"
    if holder["kind"] == "class":
        return f"class attribute `{holder['name']}` (shared by every instance, outlives the loop)"
    where = _site({"file": holder["file"], "line": holder["line"]}, root) if holder.get("line") else holder["file"]
    name = f" `{holder['name']}`" if holder.get("name") else ""
    function = f" of {holder['function']}" if holder.get("function") else ""
    return f"{holder['kind']}{name}{function} at {where}"


def keepers_text(trace: dict[str, Any], root: str | None) -> str:
    """What keeps each top site's objects alive: the holder and the referrer chain to it (empty when none found)."""
    keepers = trace.get("keepers") or []
    if not keepers:
        return ""
    lines = ["What keeps the growth alive (referrers from a grown object outwards):"]
    for keeper in keepers:
        lines.append(f"  {_site(keeper, root)}: held by {_holder(keeper.get('holder'), root)}")
        if keeper.get("path"):
            lines.append(f"    path: {keeper['path']}")
        if keeper.get("view_line"):
            made = _site({"file": keeper["view_line"][0], "line": keeper["view_line"][1]}, root)
            lines.append(f"    a view keeps its base alive; the view was made at {made}")
        if keeper.get("also_held_by"):
            lines.append(f"    also held by {keeper['also_held_by']}")
        if keeper.get("chain"):
            lines.append("    via " + " <- ".join(keeper["chain"]))
    return "\n".join(lines)


def threads_text(trace: dict[str, Any]) -> str:
    """Live threads by name at the baseline and now, when their number grew (a pool per epoch shows here)."""
    threads = trace.get("threads") or {}
    before, now = threads.get("baseline") or {}, threads.get("final") or {}
    grown = {name: count - before.get(name, 0) for name, count in now.items() if count > before.get(name, 0)}
    if not grown:
        return ""
    listed = ", ".join(
        f"{name} {before.get(name, 0)} -> {now[name]}" for name in sorted(grown, key=grown.get, reverse=True)
    )
    return f"Live threads grew: {listed}; a thread's stack and thread-local data are native memory."


def types_table(trace: dict[str, Any], top: int = TOP) -> str:
    """Title and table of the object types whose live counts grew most."""
    types = trace.get("types") or []
    title = "Object types whose live count grew most (gc-tracked objects):"
    if not types:
        return title + "\n  none grew"
    rows = [
        [row["type"], _signed(f"{row['count_diff']:,}", row["count_diff"]), f"{row['count']:,}"] for row in types[:top]
    ]
    return title + "\n" + _table(["type", "+count", "count"], rows, right=[False, True, True])


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A table as ``explain`` prints them: indented two spaces."""
    return text_table(headers, rows, right=right, indent=2)


def _site(row: dict[str, Any], root: str | None) -> str:
    """ "file:line", relative to ``root`` or site-packages when under them, shortened from the left when long."""
    return format_site(str(row["file"]), row["line"], root, PATH_WIDTH)


def _signed(text: str, value: float) -> str:
    """``text`` with a "+" in front of a non-negative ``value`` (format_size already writes the "-")."""
    return f"+{text}" if value >= 0 else text
