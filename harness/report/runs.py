"""Describe recorded runs: their names, growth and speed, in the order a report shows them.

Pure: :class:`~harness.storage.Run` objects in, plain values out (finding and
loading runs is :func:`harness.storage.load_runs`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.growth import summarise_run
from harness.loops import VARIANTS
from harness.records import NO_LEAK, WINDOWS
from harness.storage import Run


def model_of(run: Run) -> str:
    """``"fc-only"`` when only the fully connected layers learn, ``"script"`` for a script, else ``"CNN"``."""
    if run.meta.get("script") is not None:
        return "script"
    options = (run.meta.get("config") or {}).get("options") or {}
    return "fc-only" if options.get("fc_only") else "CNN"


def leak_of(run: Run) -> str:
    """The run's leak name, or ``"none"``."""
    return run.meta.get("leak") or NO_LEAK


def run_label(run: Run) -> str:
    """A short human name: variant, model when fc-only, leak when on, seed."""
    parts = [str(run.meta.get("variant"))]
    if model_of(run) == "fc-only":
        parts.append("fc-only")
    if leak_of(run) != NO_LEAK:
        parts.append(leak_of(run))
    if run.meta.get("seed") is not None:  # a script has none
        parts.append(f"s{run.meta.get('seed')}")
    return " ".join(parts)


def growth_of(run: Run) -> dict[str, Any]:
    """The run's growth summary: the one stored in meta.json, else computed now from its epochs."""
    stored = run.meta.get("growth")
    if stored:
        return dict(stored)
    if run.epochs.empty:
        return {
            "verdict": "inconclusive",
            "bytes_per_epoch": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
        }
    return summarise_run(run.epochs, run.meta)


def peak_rss_bytes(run: Run) -> float:
    """The run's peak RSS (:attr:`Run.peak_rss_bytes`) as a table number: NaN when nothing was measured."""
    return float_or_nan(run.peak_rss_bytes)


def epochs_per_second(run: Run) -> float:
    """Finished epochs over the seconds spent in ``train_epoch``.

    The sum of ``epoch_s`` rather than the wall time: a traced run pauses between
    epochs for tracemalloc snapshots (tens of seconds), which is not the loop's speed.
    """
    if run.epochs.empty or "epoch_s" not in run.epochs or run.meta.get("epochs_from") == WINDOWS:
        return math.nan  # a script's windows are a clock, not its speed
    busy = float(run.epochs["epoch_s"].sum())
    return len(run.epochs) / busy if busy > 0 else math.nan


def ran_alone(run: Run) -> bool:
    """Whether no other run shared the machine with it (a sweep's schedule says; a run without one ran on its own)."""
    schedule = run.meta.get("schedule")
    return not isinstance(schedule, dict) or not schedule.get("shared_with")


def final_metric(run: Run, name: str) -> float:
    """The metric's value after the last finished epoch (NaN when not recorded)."""
    if run.epochs.empty or name not in run.epochs:
        return math.nan
    return float(run.epochs[name].iloc[-1])


def sort_runs(runs: Sequence[Run]) -> list[Run]:
    """Runs in reading order: variant (registry order), model, fixed before leaky, length, seed, id."""
    order = {name: index for index, name in enumerate(ordered_variants(runs))}
    return sorted(
        runs,
        key=lambda r: (
            order[str(r.meta.get("variant"))],
            model_of(r) != "CNN",
            leak_of(r) != NO_LEAK,
            leak_of(r),
            -int(r.meta.get("epochs_planned") or 0),
            int(r.meta.get("seed") or 0),
            str(r.meta.get("run_id")),
        ),
    )


def ordered_variants(runs: Sequence[Run]) -> list[str]:
    """Variants in the registry's order, then any others (users' own) by name."""
    present = {str(r.meta.get("variant")) for r in runs}
    known = [name for name in VARIANTS if name in present]
    return known + sorted(present - set(known))


def pick_run(runs: Sequence[Run], wanted: str | None) -> Run | None:
    """The run whose id or directory matches ``wanted``; by default the most telling leaky run.

    By default: an untraced leaky run (a traced one pauses for snapshots, which
    dominate its time series), the one with the longest epochs, so the most
    samples fall inside each epoch; else any run with samples.
    """
    if wanted:
        for run in runs:
            if wanted in (run.meta.get("run_id"), Path(run.path).name, str(run.path)):
                return run
        names = ", ".join(str(r.meta.get("run_id")) for r in runs[:5])
        raise UsageError(f"--samples-run {wanted!r} is not among the reported runs (for example: {names})")
    with_samples = [r for r in runs if not r.samples.empty and not r.epochs.empty]
    leaky = [r for r in with_samples if leak_of(r) != NO_LEAK]
    untraced = [r for r in leaky if not r.meta.get("trace")]
    chosen = untraced or leaky or with_samples
    if not chosen:
        return None
    return max(chosen, key=lambda r: float(r.epochs["epoch_s"].mean()))


def float_or_nan(value: Any) -> float:
    """A number or NaN for a missing one."""
    return math.nan if value is None else float(value)
