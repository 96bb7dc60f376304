"""What the headline memory figure shows: each variant's leaky and fixed runs, and where a cap stopped a run.

Pure: runs in, plain data out; :mod:`harness.report.figures` draws it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.formatting import format_bytes
from harness.records import MEMORY_CAP, NO_LEAK, WINDOWS
from harness.report.runs import (
    float_or_nan,
    growth_of,
    leak_of,
    model_of,
    ordered_variants,
)
from harness.storage import Run


@dataclass(frozen=True)
class MemoryPanel:
    """One variant's leaky and fixed runs for the headline figure, with legend texts giving their growth."""

    variant: str
    leaky: list[Run]
    fixed: list[Run]
    leaky_label: str = "leak"
    fixed_label: str = "fixed"
    x_label: str = "epoch"  # "window (1 s)" for a script judged per window of its samples


def memory_panels(runs: Sequence[Run]) -> list[MemoryPanel]:
    """Per variant: its leaky runs and the fixed runs to set beside them (CNN model only).

    Untraced runs are preferred when there are any (tracemalloc adds its own memory
    and a jump at the baseline snapshot), and fixed runs with the same planned
    epochs as a leaky run, so a 12-epoch leak is not drawn against a 500-epoch run;
    without such runs all are shown.
    """
    panels = []
    for variant in ordered_variants(runs):
        chosen = ("CNN", "script")  # a script's runs have a panel of their own, named by its path
        mine = [r for r in runs if r.meta.get("variant") == variant and model_of(r) in chosen and not r.epochs.empty]
        mine = [r for r in mine if not r.meta.get("trace")] or mine
        leaky = [r for r in mine if leak_of(r) != NO_LEAK]
        fixed = [r for r in mine if leak_of(r) == NO_LEAK]
        planned = {r.meta.get("epochs_planned") for r in leaky}
        matching = [r for r in fixed if r.meta.get("epochs_planned") in planned]
        fixed = matching or fixed
        windows = sorted({r.meta.get("window_s") for r in mine if r.meta.get("epochs_from") == WINDOWS})
        x_label = f"window ({', '.join(f'{w:g}' for w in windows)} s)" if windows else "epoch"
        script = any(model_of(r) == "script" for r in mine)
        if leaky or fixed:
            leaks = ", ".join(sorted({leak_of(r) for r in leaky}))
            panels.append(
                MemoryPanel(
                    variant,
                    leaky,
                    fixed,
                    f"leak: {leaks}{_growth_note(leaky)}",
                    f"{'script' if script else 'fixed'}{_growth_note(fixed)}",
                    x_label,
                )
            )
    return panels


def _growth_note(runs: Sequence[Run]) -> str:
    """`` (3 runs, +23.3 MiB/epoch)``: how many runs and their median growth, for a legend."""
    growths = [growth_of(r) for r in runs]
    rates = [float_or_nan(g.get("bytes_per_epoch")) for g in growths]
    rates = [v for v in rates if not math.isnan(v)]
    parts = [f"{len(runs)} runs"] if len(runs) > 1 else []
    if rates:
        per = "window" if any(g.get("per") == "window" for g in growths) else "epoch"
        parts.append(f"{format_bytes(float(np.median(rates)), signed=True)}/{per}")
    return f" ({', '.join(parts)})" if parts else ""


def cap_hit(run: Run) -> tuple[int, float, float] | None:
    """(epoch in progress, memory at the stop, cap) when the memory cap stopped the run, else None.

    The memory is the figure drawn for the run that passed the cap: the tree's PSS
    when the run had children (drawn dashed), else the worker's RSS.
    """
    if run.meta.get("status") != MEMORY_CAP:
        return None
    stop = run.meta.get("stop") or {}
    last = int(stop.get("epoch") or len(run.epochs))
    figure = "tree_pss_bytes" if run.max_children > 0 and stop.get("tree_pss_bytes") else "rss_bytes"
    rss = float_or_nan(stop.get(figure))
    cap = float_or_nan(run.meta.get("memory_cap_bytes"))
    return last + 1, rss if not math.isnan(rss) else cap, cap
