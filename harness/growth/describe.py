"""A growth verdict in words: the one sentence that ``run``, ``explain``, ``check``, the plugin and the report print."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.formatting import format_rate_ci, format_size, plural
from harness.growth.series import stop_text
from harness.growth.verdict import MEASURES, ci_label


def measure_name(measure: Mapping[str, Any]) -> str:
    """ "RSS" or "Python heap": what a measure's series is."""
    return MEASURES.get(str(measure.get("measure", "")), "memory")


def reaches(projection: Mapping[str, Any] | None, per: str = "epoch") -> str:
    """ "the 4.0 GiB cap at epoch ~174 and this machine's 23.5 GiB at epoch ~1030" ("" when neither is reached)."""
    if not projection:
        return ""
    parts = []
    if projection.get("cap_epoch") is not None:
        parts.append(f"the {format_size(projection['memory_cap_bytes'])} cap at {per} ~{projection['cap_epoch']}")
    if projection.get("share_epoch") is not None:
        share = format_size(projection["memory_share_bytes"])
        parts.append(f"its {share} share of the sweep's memory budget at {per} ~{projection['share_epoch']}")
    if projection.get("memory_total_epoch") is not None:
        total, epoch = format_size(projection["memory_total_bytes"]), projection["memory_total_epoch"]
        alongside = projection.get("alongside_bytes")
        less = f" less the {format_size(alongside)} capped for the runs alongside" if alongside else ""
        parts.append(f"this machine's {total}{less} at {per} ~{epoch}")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 2 else " and ".join(parts)


def describe_measure(measure: Mapping[str, Any], named: bool = False, projection: bool = True) -> str:
    """ "leak, +12.3 MiB/epoch (95% CI 12.1-12.5 MiB) over 40 epochs after 2 warm-up epochs; reaches ...".

    ``named`` puts the series' name first ("RSS leak, ..."); an inconclusive
    verdict ends with its reason, a leak with where its projection reaches
    (unless ``projection`` is false).
    """
    prefix = f"{measure_name(measure)} " if named else ""
    if measure["bytes_per_epoch"] is None:
        return f"{prefix}{measure['verdict']}: {measure['reason']}"
    per = measure.get("per", "epoch")  # "window" for a script judged per window of samples
    rate, ci = format_rate_ci(measure["bytes_per_epoch"], measure["ci_low"], measure["ci_high"], signed=True, per=per)
    over = f"{rate} ({ci_label(measure)} {ci}) over {plural(measure['n_epochs_used'], per)}"
    if measure.get("onset") is not None:  # a late leak: the fit from its onset decides
        text = f"{prefix}leak from {per} {measure['onset']}, {over} since; flat before it"
    elif measure.get("stop"):
        stop = measure["stop"]
        return f"{prefix}{measure['verdict']}, {over} since {per} {stop['epoch'] + 1}; before, it {stop_text(stop)}"
    else:
        text = f"{prefix}{measure['verdict']}, {over} after {plural(measure['warmup_epochs'], 'warm-up ' + per)}"
    if measure["verdict"] == "inconclusive":
        return f"{text}; {measure['reason']}"
    where = reaches(measure.get("projection"), per) if projection else ""
    return f"{text}; reaches {where}" if where else text


def format_growth(growth: Mapping[str, Any]) -> str:
    """Lines for the end of ``run``: the verdict, the rate with its CI, the projection; then the other series."""
    judged = growth.get("judged", "rss")
    lines = [f"verdict: {describe_measure(growth, named=judged != 'rss')}"]
    warning = (growth.get("tracing") or {}).get("warning")
    if warning:
        lines.append(f"warning: {warning}")
    heap = growth.get("heap")
    if growth.get("note"):
        lines.append(f"note: {growth['note']}")
    elif heap is not None and judged != "heap":
        lines.append(f"Python heap: {describe_measure(heap)}")
    for name, fit in (growth.get("series") or {}).items():
        if name not in (judged, "heap"):
            lines.append(f"{measure_name(fit)}: {describe_measure(fit, projection=name == 'tree-pss')}")
    return "\n".join(lines)
