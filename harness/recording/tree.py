"""The run's process tree, as the parent sees it: who is in it, what it holds, and the figure the memory cap applies to.

Who measures what.  The worker (the trainer) measures its own RSS and peak at
the exact end of each epoch (statm and getrusage: harness.worker.process).
Everything about the tree is measured here, in the parent, on the sampling
grid (every 50 ms by default), so a loop of 1 ms epochs never pays for a scan
of /proc, and an epoch row carries the tree figures of the latest sample.

The tree is every live descendant of the keeper (:mod:`harness.worker.keeper`)
but the keeper itself: the trainer, whatever it started, and what those
orphaned (the keeper adopts them).  Members are found by
:class:`harness.worker.procfs.Scanner` and named by (pid, start time).

Two kinds of reading, because their costs differ by a hundredfold:

- every sample reads each member's /proc/PID/stat (about 25 us each): the
  count of children, their RSS, and each member's page faults;
- an exact reading adds /proc/PID/smaps_rollup for each member: the tree's
  PSS (each page shared out among the processes mapping it) and USS.  Its cost
  grows with the memory mapped (about 30 ms per GiB here), so it is taken at
  most every ``max(interval, cost / PSS_BUDGET)``: at most 5% of a core; 1%
  while the worker has no children (its PSS then moves with its RSS).

The memory cap applies to the tree's PSS (see the README for why).  Between
exact readings the capped figure is a bound: the last exact PSS plus the RSS
each member gained since, and the whole RSS of members that are new.  A
process that exits leaves its last PSS in the bound, since its share of
shared pages passes to the others.  When the bound passes the cap, an exact
reading is taken at once and decides, so an allocation anywhere in the tree is
caught within one sample of passing the cap.  And when, at the rate it rose
between the last two samples, the tree would pass the cap before the next
sample is due, the next one is taken when it would (at least 5 ms on), so a
tree racing towards the cap is caught close to the moment it passes it.

Copy-on-write copies (a page shared with a forked child, written by one of
them) raise PSS but not RSS: they are counted by page faults, and when faults
could have carried the tree over the cap an exact reading is taken as soon as
a larger budget (25%) allows.

The tracer's child (``--trace``: a fork of the trainer that takes trace
points, :mod:`harness.worker.heap.child`) is a member, announced by the
trainer (:meth:`TreeSampler.tracer`), that is left out of the figures and of
the cap: it counts in neither the children nor their RSS nor the bound, and an
exact reading adds only the share of its pages it shares with the others
(PSS less USS: the trainer's pages it maps, which without it would be the
trainer's alone), never its own allocations.  USS is not recorded while it
lives (the trainer's pages are then shared, not its own).  It is still ended
with the run.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.records import TreeFigures
from harness.worker import procfs
from harness.worker.procfs import ProcStat

PSS_BUDGET = 0.05  # exact readings on schedule: at most this share of one core
ALONE_BUDGET = 0.01  # the same while the worker has no children: its PSS then follows its RSS
MIN_GAP_S = 0.005  # the closest two samples come when the tree races towards the cap
NEAR_CAP_BUDGET = 0.25  # exact readings when page faults alone could have passed the cap


@dataclass(frozen=True)
class Reading:
    """One look at the run's processes."""

    worker_rss: int | None  # the trainer's own RSS; None before its pid is known or after it has gone
    figures: TreeFigures  # tree_uss_bytes and tree_pss_bytes only when this reading was exact
    capped_bytes: int  # the tree's PSS: exact when ``exact``, else the bound described in the module docstring
    exact: bool


class TreeSampler:
    """Reads the tree below the keeper ``root``; remembers every member it saw, to end them all at the end."""

    def __init__(
        self,
        root: int,
        interval_s: float,
        proc: str = procfs.PROC,
        root_unreaped: Callable[[], bool] = lambda: True,
    ) -> None:
        self.scanner = procfs.Scanner(root, proc)
        # Once the keeper is reaped its pid may name another process: then only ``seen`` counts.
        self.root_unreaped = root_unreaped
        self.interval_s = interval_s
        self.proc = proc
        self.trainer: int | None = None
        self.tracers: dict[int, int] = {}  # the tracer's children now: pid -> start time
        self._before_fork: set[int] | None = None  # members when a tracer's fork was announced, until its pid is
        self._last_members: list[int] = []  # pids of the last reading's members
        self.seen: dict[int, ProcStat] = {}  # every member ever seen, by pid (the latest process of that pid)
        self.latest: Reading | None = None
        self.latest_exact: TreeFigures | None = None
        self._for_epoch: TreeFigures | None = None
        self._given_exact = 0  # the exact readings an epoch row has carried so far
        self._base: dict[int, ProcStat] = {}  # members' stats at the last exact reading
        self._base_pss = 0
        self._exact_at = -float("inf")
        self._exact_cost = 0.0
        self._previous: tuple[float, int] | None = None  # (time, capped figure) of the reading before
        self._rate = 0.0  # bytes per second the capped figure rose between the last two readings
        self.stats = {"samples": 0, "exact": 0, "forced": 0, "sample_s": 0.0, "exact_s": 0.0, "max_children": 0}

    def members(self) -> list[ProcStat]:
        """The tree's live processes now (none once the keeper is reaped: its pid may name another process)."""
        if not self.root_unreaped():
            return []
        found = self.scanner.members()
        self.seen.update((stat.pid, stat) for stat in found)
        return found

    def tracer(self, pid: int | None, ended: bool) -> None:
        """The trainer forks (pid None), forked or reaped its tracer's child: leave it out of the figures and cap.

        Announced before the fork, so a sample between the fork and the pid's
        message already leaves out a new child of the trainer.
        """
        if pid is None:  # the members of the last reading: the child may exist already when this is read
            self._before_fork = None if ended else set(self._last_members)
            return
        self._before_fork = None
        stat = None if ended else procfs.read_stat(pid, self.proc)
        if stat is None:
            self.tracers.pop(pid, None)
        else:
            self.tracers[pid] = stat.start

    def _split(self, found: list[ProcStat]) -> tuple[list[ProcStat], list[ProcStat]]:
        """(the tree's members that count, the tracer's children)."""
        before = self._before_fork
        if not self.tracers and before is None:
            return found, []
        tracers = [
            stat
            for stat in found
            if self.tracers.get(stat.pid) == stat.start
            or (before is not None and stat.ppid == self.trainer and stat.pid not in before)
        ]
        return [stat for stat in found if stat not in tracers], tracers

    def read(self, cap: int | None, exact: bool | None = None) -> Reading:
        """Sample the tree; exact when due, or when the bound passes ``cap`` (or as ``exact`` says, for benchmarks)."""
        started = time.thread_time()
        now = time.monotonic()
        members = self.members()
        self._last_members = [stat.pid for stat in members]
        found, tracers = self._split(members)
        grown, faulted = self._growth(found)
        bound = self._base_pss + grown
        since = now - self._exact_at
        if exact is None:
            exact = self._due(since, bound, faulted, cap, alone=len(found) <= 1)
        if exact and cap is not None and since < self.interval_s:
            self.stats["forced"] += 1
        children = [stat for stat in found if stat.pid != self.trainer]
        figures = TreeFigures(len(children), sum(stat.rss_bytes for stat in children))
        capped = bound
        if exact:
            figures, capped = self._exact(found, figures, now, tracers)
        worker = next((stat.rss_bytes for stat in found if stat.pid == self.trainer), None)
        if self._previous is not None and now > self._previous[0]:
            self._rate = (capped - self._previous[1]) / (now - self._previous[0])
        self._previous = (now, capped)
        self.latest = Reading(worker, figures, capped, exact)
        self._for_epoch = None
        self.stats["samples"] += 1
        self.stats["sample_s"] += time.thread_time() - started
        self.stats["max_children"] = max(self.stats["max_children"], len(children))
        return self.latest

    def next_in(self, interval_s: float, cap: int) -> float:
        """Seconds to the next sample: the interval, or less if at its last rate the tree would pass the cap sooner."""
        if self.latest is None or self._rate <= 0 or self.latest.capped_bytes >= cap:
            return interval_s
        return max(MIN_GAP_S, min(interval_s, (cap - self.latest.capped_bytes) / self._rate))

    def _due(self, since: float, bound: int, faulted: int, cap: int | None, alone: bool) -> bool:
        """Whether this sample reads PSS: on the budget's schedule, or because the cap may have been passed."""
        budget = ALONE_BUDGET if alone else PSS_BUDGET
        if self.latest_exact is None or since >= max(self.interval_s, self._exact_cost / budget):
            return True
        if cap is None:
            return False
        return bound > cap or (bound + faulted > cap and since >= self._exact_cost / NEAR_CAP_BUDGET)

    def _growth(self, found: list[ProcStat]) -> tuple[int, int]:
        """(RSS gained since the last exact reading, bytes copy-on-write could have copied): the bound's parts."""
        grown = faulted = 0
        for stat in found:
            base = self._base.get(stat.pid)
            if base is None or base.start != stat.start:
                grown += stat.rss_bytes  # new since: its PSS is at most its RSS
            else:
                grown += max(0, stat.rss_bytes - base.rss_bytes)
                faulted += max(0, stat.faults - base.faults) * procfs.PAGE_SIZE
        return grown, faulted

    def _exact(
        self, found: list[ProcStat], figures: TreeFigures, now: float, tracers: list[ProcStat]
    ) -> tuple[TreeFigures, int]:
        started = time.thread_time()
        pss = uss = 0
        for stat in found:
            rollup = procfs.read_rollup(stat.pid, self.proc)
            if rollup is not None:
                pss += rollup.pss
                uss += rollup.uss
        for stat in tracers:  # the pages it shares are the others' (their PSS lost that share to it); its own are not
            rollup = procfs.read_rollup(stat.pid, self.proc)
            if rollup is not None:
                pss += rollup.pss - rollup.uss
        self._exact_cost = time.thread_time() - started
        self.stats["exact"] += 1
        self.stats["exact_s"] += self._exact_cost
        self._base = {stat.pid: stat for stat in found}
        self._base_pss, self._exact_at = pss, now
        exact = TreeFigures(figures.children, figures.children_rss_bytes, None if tracers else uss, pss)
        self.latest_exact = exact
        return exact, pss

    def for_epoch(self) -> TreeFigures:
        """The figures an epoch row carries: children from the latest sample; PSS and USS read since the last row.

        An exact reading is budgeted (it walks every member's page tables), so a fast
        loop finishes several epochs between two: only the first row after a reading
        carries it, and the rows between leave PSS and USS empty (not measured then),
        as an untraced run leaves heap_bytes empty.  Repeating the last value instead
        would draw a staircase whose flat steps the trend reads as no growth.
        """
        if self.latest is None or self.latest_exact is None:
            return TreeFigures()
        figures = self.latest.figures
        if self._given_exact != self.stats["exact"]:  # a reading no row has carried yet
            self._given_exact = self.stats["exact"]
            exact = self.latest_exact
            return TreeFigures(figures.children, figures.children_rss_bytes, exact.tree_uss_bytes, exact.tree_pss_bytes)
        if self._for_epoch is None:  # built once per sample: a fast loop sends hundreds of records between two
            self._for_epoch = TreeFigures(figures.children, figures.children_rss_bytes)
        return self._for_epoch

    def signal_all(self, signum: int, rounds: int = 10) -> int:
        """Send ``signum`` to every member, again until no new one appears (a fork meanwhile); how many were sent."""
        done: set[tuple[int, int]] = set()
        for _ in range(rounds):
            fresh = [stat for stat in self.members() if (stat.pid, stat.start) not in done]
            if not fresh:
                break
            for stat in fresh:
                procfs.signal_process(stat, signum, self.proc)
                done.add((stat.pid, stat.start))
        return len(done)

    def kill_all(self) -> int:
        """SIGKILL every member, those seen earlier too; the keeper (not a member) then sweeps what is left."""
        for stat in list(self.seen.values()):
            procfs.signal_process(stat, signal.SIGKILL, self.proc)
        return self.signal_all(signal.SIGKILL)

    def survivors(self) -> list[ProcStat]:
        """Members seen at some point that are still alive (the same process: pid and start time)."""
        alive = []
        for stat in self.seen.values():
            now = procfs.read_stat(stat.pid, self.proc)
            if now is not None and now.start == stat.start and now.alive:
                alive.append(now)
        return alive

    def summary(self) -> dict[str, Any]:
        """What was done, for meta.json's ``process_tree``."""
        samples, exact = self.stats["samples"], self.stats["exact"]
        stat_s = self.stats["sample_s"] - self.stats["exact_s"]
        return {
            "enumeration": self.scanner.method,
            "capped": "tree-pss",
            "samples": samples,
            "exact_readings": exact,
            "forced_exact_readings": self.stats["forced"],
            "stat_cost_us": round(1e6 * stat_s / samples, 1) if samples else None,
            "rollup_cost_us": round(1e6 * self.stats["exact_s"] / exact, 1) if exact else None,
            "pss_budget": PSS_BUDGET,
            "pss_budget_alone": ALONE_BUDGET,
            "max_children": self.stats["max_children"],
            "processes_seen": len(self.seen),
        }
