"""Judge one recorded run against a budget: the checks shared by the pytest plugin and ``check``.

Each check in :data:`CHECKS` looks at the analysed run and returns None or a
one-line failure message, in the manner of pytest-memray's markers; a run is
within budget when every check returns None.  The growth numbers come from
:func:`harness.growth.summarise_growth`, and a growth budget is exceeded only
when the whole confidence interval lies above it (:func:`harness.growth.exceeds_budget`),
so page-granular noise never fails a check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from harness import records
from harness.errors import UsageError
from harness.formatting import format_size, plural
from harness.growth import describe_measure, exceeds_budget, measure_label, summarise_run
from harness.guard.budgets import Budget, BudgetTable
from harness.storage import Run

# The measures whose max-peak is held to the tree's own peak, and the column it is read from.
TREE_PEAKS = {"tree-pss": "tree_pss_bytes", "tree-uss": "tree_uss_bytes"}


@dataclass(frozen=True)
class Analysed:
    """A run with its growth analysed as the budget asks (warm-up, measure)."""

    label: str  # "numpy" or "numpy:history"
    meta: dict[str, Any]
    growth: dict[str, Any]  # summarise_growth's dict, judged on the budget's measure
    measure: dict[str, Any]  # the part judged: the growth dict's top level
    peak_rss_bytes: int | None  # the worker's own peak RSS
    peak_bytes: int | None  # the peak max-peak is held to: of the tree's PSS or USS for those measures, else RSS
    peak_name: str  # "RSS", "tree PSS" or "tree USS"


@dataclass(frozen=True)
class Judgement:
    """The outcome of judging one run: failures (empty when within budget) and notes."""

    run_dir: Path
    label: str
    status: str
    epochs_done: int
    growth: dict[str, Any]  # the judged measure (RSS, tree PSS or USS, or Python heap)
    peak_rss_bytes: int | None
    failures: tuple[str, ...]
    notes: tuple[str, ...]
    analysis: dict[str, Any]  # the whole growth dict, as stored in meta.json (skipped warm-up included)
    peak_bytes: int | None = None  # the peak max-peak is held to (see Analysed)
    peak_name: str = "RSS"
    caught_by: str | None = None  # for a run expected to leak: "verdict", "memory cap", "max-peak" or "max-growth"

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.failures

    @property
    def verdict(self) -> str:
        """The growth verdict of the judged measure: "leak", "flat" or "inconclusive"."""
        return str(self.growth["verdict"])

    @property
    def bytes_per_epoch(self) -> float | None:
        """The fitted growth per epoch of the judged measure (None when too few epochs)."""
        return self.growth["bytes_per_epoch"]

    @property
    def summary(self) -> str:
        """One line: how the judged memory behaved."""
        return describe_measure(self.growth, named=True, projection=False)


def analyse(run: Run, budget: Budget) -> Analysed:
    """The run's growth after skipping ``budget.warmup`` epochs if set; UsageError if the measure is not recorded."""
    meta = run.meta
    epochs = run.epochs
    skipped = budget.warmup or 0
    if skipped:
        # The analysis still detects warm-up after the skipped epochs; numbering is kept.
        epochs = epochs[pd.to_numeric(epochs["epoch"], errors="coerce") > skipped]
    measure = budget.measure_or_default
    try:
        growth = summarise_run(epochs, meta, measure)
    except UsageError as exc:
        raise UsageError(f"{run.path}: {exc}") from None
    for part in (growth, *growth["series"].values()):  # growth["heap"] is one of the series
        part["warmup_epochs"] += skipped
    label = BudgetTable.key(str(meta.get("variant")), meta.get("leak"))
    peak, peak_name = run.peak_rss_bytes, "RSS"
    if measure in TREE_PEAKS:
        peak, peak_name = run.peak_of(TREE_PEAKS[measure]), measure_label(measure)
    return Analysed(label, meta, growth, growth, run.peak_rss_bytes, peak, peak_name)


def _stop_text(meta: dict[str, Any]) -> str:
    stop = meta.get("stop") or {}
    done, planned = meta.get("epochs_done", 0), meta.get("epochs_planned", "?")
    per = "window" if meta.get("epochs_from") == records.WINDOWS else "epoch"
    where = f"after epoch {done}/{planned}" if planned is not None else f"after {plural(done, per)}"
    message = stop.get("message")
    return f"{where}: {message}" if message else where


def check_status(run: Analysed, budget: Budget, strict: bool) -> str | None:
    """A run that did not complete fails, except one stopped by the memory cap when a leak is expected."""
    status = run.meta.get("status")
    if status == records.COMPLETED:
        return None
    if status == records.MEMORY_CAP:
        if budget.expects_leak:
            return None
        stop = run.meta.get("stop") or {}
        pss, rss = stop.get("tree_pss_bytes"), stop.get("rss_bytes")
        at = f" at tree PSS {format_size(pss)}" if pss else f" at RSS {format_size(rss)}" if rss else ""
        return (
            f"stopped by the {format_size(run.meta.get('memory_cap_bytes') or 0)} memory cap{at} {_stop_text(run.meta)}"
        )
    if status == records.RUNNING:
        return f"the run has not finished (status running, {run.meta.get('epochs_done', 0)} epochs recorded)"
    return f"the run {status} {_stop_text(run.meta)}"


def caught_by(run: Analysed, budget: Budget) -> str | None:
    """How a leak was caught: its growth verdict, the memory cap, or going over the entry's own budget; else None."""
    if run.meta.get("status") == records.MEMORY_CAP:
        return "memory cap"
    if run.measure["verdict"] == "leak":
        return "verdict"
    if budget.max_peak is not None and run.peak_bytes is not None and run.peak_bytes > budget.max_peak:
        return "max-peak"
    if budget.max_growth is not None and exceeds_budget(run.measure, budget.max_growth) is not None:
        return "max-growth"
    return None


def check_expected_leak(run: Analysed, budget: Budget, strict: bool) -> str | None:
    """A run expected to leak must be caught: called a leak, stopped by the cap, or over its entry's budget."""
    if not budget.expects_leak or caught_by(run, budget) is not None:
        return None
    within = []
    if budget.max_peak is not None and run.peak_bytes is not None:
        within.append(f"peak {run.peak_name} {format_size(run.peak_bytes)} within {format_size(budget.max_peak)}")
    extra = f" ({'; '.join(within)})" if within else ""
    return f"expected a leak, but {describe_measure(run.measure, named=True, projection=False)}{extra}"


def check_growth(run: Analysed, budget: Budget, strict: bool) -> str | None:
    """Growth confidently above ``max-growth`` fails; without one, a ``leak`` verdict does."""
    if budget.expects_leak:
        return None
    if budget.max_growth is not None:
        return exceeds_budget(run.measure, budget.max_growth)
    message = exceeds_budget(run.measure, run.measure["min_bytes_per_epoch"])
    return None if message is None else f"{message} (the leak threshold: no max-growth set)"


def check_peak(run: Analysed, budget: Budget, strict: bool) -> str | None:
    """A peak above ``max-peak`` fails: of the tree's PSS or USS when measured so, else of the worker's RSS.

    For a run expected to leak, going over it is how the leak is caught (:func:`check_expected_leak`).
    """
    if budget.expects_leak or budget.max_peak is None or run.peak_bytes is None or run.peak_bytes <= budget.max_peak:
        return None
    return (
        f"peak {run.peak_name} {format_size(run.peak_bytes)} is over the {format_size(budget.max_peak)} budget "
        f"by {format_size(run.peak_bytes - budget.max_peak)}"
    )


def check_inconclusive(run: Analysed, budget: Budget, strict: bool) -> str | None:
    """An ``inconclusive`` verdict fails only in strict mode (otherwise it is a note)."""
    if not strict or budget.expects_leak or run.measure["verdict"] != "inconclusive":
        return None
    return describe_measure(run.measure, named=True, projection=False)


Check = Callable[[Analysed, Budget, bool], str | None]
CHECKS: dict[str, Check] = {
    "status": check_status,
    "expect": check_expected_leak,
    "max-growth": check_growth,
    "max-peak": check_peak,
    "strict": check_inconclusive,
}


def judge(run: Run, budget: Budget, *, strict: bool = False) -> Judgement:
    """Apply every check in :data:`CHECKS` to ``run``; an unfinished run is judged on its status alone."""
    analysed = analyse(run, budget)
    status = str(analysed.meta.get("status"))
    stopped_early = status not in (records.COMPLETED, records.MEMORY_CAP)
    failures = []
    for name, check in CHECKS.items():
        if stopped_early and name != "status":
            break  # the growth of a run that failed or was cut short says nothing about the budget
        message = check(analysed, budget, strict)
        if message is not None:
            failures.append(message)
    notes = []
    measure = analysed.measure
    if not failures and measure["verdict"] == "inconclusive" and not budget.expects_leak:
        notes.append("run more epochs for a verdict")  # the summary already says why it is inconclusive
    caught = caught_by(analysed, budget) if budget.expects_leak and not failures else None
    if caught == "memory cap":
        notes.append(f"the leak reached the memory cap {_stop_text(analysed.meta)}")
    elif caught == "max-peak":
        notes.append(check_peak(analysed, replace(budget, expect=None), strict) or "")
    elif caught == "max-growth":
        notes.append(check_growth(analysed, replace(budget, expect=None), strict) or "")
    if analysed.growth.get("note"):
        notes.append(str(analysed.growth["note"]))
    return Judgement(
        run_dir=run.path,
        label=analysed.label,
        status=status,
        epochs_done=int(analysed.meta.get("epochs_done") or 0),
        growth=measure,
        peak_rss_bytes=analysed.peak_rss_bytes,
        failures=tuple(failures),
        notes=tuple(notes),
        analysis=analysed.growth,
        peak_bytes=analysed.peak_bytes,
        peak_name=analysed.peak_name,
        caught_by=caught,
    )
