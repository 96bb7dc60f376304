"""A sweep's memory budget: the caps of the runs going at once on a machine must fit in it.

Each run can grow up to its memory cap (``run`` stops it there), so runs whose
caps fit in the budget can all reach their caps at once without the machine
running short.  The budget is half the memory available when the sweep starts
(the default cap's own rule, applied once to the whole machine), or
``--memory-budget``; on Dask each worker declares its own (resource ``MiB``).
A run's cap is its spec's ``memory_cap``, else its share: the budget over the
runs taken at once, at most the 4 GiB a single run gets by default.  A run
whose cap alone is more than the default budget (the machine was busy when the
sweep started) runs alone, as it would have one run at a time; a budget given
with ``--memory-budget`` is kept to: such a run is refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable

import psutil

from harness.errors import UsageError
from harness.formatting import format_size
from harness.recording import MAX_DEFAULT_CAP
from harness.sizes import parse_size
from harness.sweep.planned import PlannedRun

MIB = 1024**2


def default_budget() -> int:
    """Half the memory available now."""
    return psutil.virtual_memory().available // 2


def parse_budget(text: str) -> int:
    """``--memory-budget SIZE`` in bytes; UsageError for a size below 1 MiB or one that cannot be read."""
    size = parse_size(text)
    if size < MIB:
        raise UsageError(f"expected a size of at least 1 MiB, got {text!r}")
    return size


def share(budget_bytes: int, slots: int) -> int:
    """The default cap of a run: the budget over the runs taken at once, at most MAX_DEFAULT_CAP."""
    return min(MAX_DEFAULT_CAP, budget_bytes // max(1, slots))


def cap_of(run: PlannedRun, default_bytes: int) -> int:
    """The memory cap a run gets: its spec's, else ``default_bytes``."""
    return parse_size(run.memory_cap) if run.memory_cap is not None else default_bytes


def check_fits(runs: Iterable[PlannedRun], budget_bytes: int, default_bytes: int, whose: str) -> None:
    """UsageError naming the first run whose cap alone is more than the budget (it could never start)."""
    for run in runs:
        cap = cap_of(run, default_bytes)
        if cap > budget_bytes:
            raise UsageError(
                f"{run.describe()}: its memory cap {format_size(cap)} is more than {whose} "
                f"{format_size(budget_bytes)}, so it could never start; raise the budget or lower its memory_cap"
            )


class Admission:
    """The slots and memory still free on this machine: a run starts only when its slots and its cap fit."""

    def __init__(self, slots: int, budget_bytes: int) -> None:
        self.slots, self.budget_bytes = slots, budget_bytes
        self.free_slots, self.free_bytes = slots, budget_bytes

    def need(self, run: PlannedRun) -> int:
        """Slots a run takes: all of them for a run that must be alone (timing, PSS), else one."""
        return self.slots if run.alone else 1

    def admits(self, run: PlannedRun, cap_bytes: int) -> bool:
        """Whether ``run`` may start now; with nothing going, any run may (a cap above a default budget runs alone)."""
        return self.free_slots >= self.need(run) and (self.free_bytes >= cap_bytes or self.free_slots == self.slots)

    def take(self, run: PlannedRun, cap_bytes: int) -> None:
        """Count a run that starts."""
        self.free_slots -= self.need(run)
        self.free_bytes -= cap_bytes

    def give(self, run: PlannedRun, cap_bytes: int) -> None:
        """Count a run that ended."""
        self.free_slots += self.need(run)
        self.free_bytes += cap_bytes
