"""How a recorded run ended, in the lines ``run`` prints at its end."""

from __future__ import annotations

from typing import Any

from harness import records
from harness.formatting import format_size, plural
from harness.growth import format_growth
from harness.recording.request import RunOutcome


def _done_text(meta: dict[str, Any], done: int) -> str:
    """ "epoch 3/12" for a loop; "3 epochs" for a script's marks; "12 windows of 1 s" for its windows."""
    if meta.get("epochs_from") == records.WINDOWS:
        return f"{plural(done, 'window')} of {meta.get('window_s'):g} s"
    if meta.get("epochs_from") == records.MARKS:
        return plural(done, "epoch")
    return f"epoch {done}/{meta['epochs_planned']}"


def describe_outcome(outcome: RunOutcome) -> list[str]:
    """Lines summarising how a run ended, for the end of ``run``."""
    meta = outcome.meta
    done = _done_text(meta, outcome.epochs_done)
    script = meta.get("script") is not None
    lines = []
    if outcome.status == records.COMPLETED and script:
        lines.append(f"completed: the script exited with status 0 after {done}")
    elif outcome.status == records.COMPLETED:
        lines.append(f"completed {outcome.epochs_done}/{meta['epochs_planned']} epochs")
    elif outcome.status == records.MEMORY_CAP:
        stop = outcome.stop or {}
        detail = stop.get("message") or _cap_detail(stop, meta["memory_cap_bytes"])
        lines.append(f"memory_cap: stopped after {done}: {detail}")
    else:
        stop = outcome.stop or {}
        lines.append(f"{outcome.status}: after {done}: {stop.get('message', '')}")
    if outcome.growth is not None:
        lines.extend(format_growth(outcome.growth).splitlines())
    return lines


def _cap_detail(stop: dict[str, Any], cap: int) -> str:
    """ "the tree's PSS 312.0 MiB (the worker and 1 child) passed the cap 300.0 MiB"."""
    pss, children = stop.get("tree_pss_bytes"), stop.get("children")
    if pss is None:
        return (
            f"RSS {format_size(stop['rss_bytes'])} passed the cap {format_size(cap)}" if stop.get("rss_bytes") else ""
        )
    who = f"the worker and {children} child{'ren' if children != 1 else ''}" if children else "the worker alone"
    return f"the tree's PSS {format_size(pss)} ({who}) passed the cap {format_size(cap)}"
