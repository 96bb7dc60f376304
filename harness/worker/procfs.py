"""Processes as Linux's /proc shows them: a process's counters, a process tree, signals that cannot hit a stranger.

Shared by the keeper (:mod:`harness.worker.keeper`), which kills what the
training code left behind, and the parent (:mod:`harness.recording.tree`),
which measures and caps the tree.  A process is named by ``(pid, start time)``
everywhere: a pid can be reused once its process is gone, the pair cannot.

Costs on this machine (2 cores, about 90 processes, loaded): listing /proc
150 us; one /proc/PID/stat read about 25 us (so a scan of every process about
3 ms); /proc/PID/smaps_rollup 0.25 ms for a small Python process and about
30 ms per GiB resident, since the kernel walks the page tables to share out
each page.  Hence :class:`Scanner` reads the stat of new pids only, and
PSS is read on a budget (:mod:`harness.recording.tree`).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

PROC = "/proc"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
ZOMBIE = "Z"


@dataclass(frozen=True)
class ProcStat:
    """One process's line of /proc/PID/stat, the fields we use."""

    pid: int
    ppid: int
    state: str
    start: int  # clock ticks after boot: with the pid, names the process for good
    rss_bytes: int
    faults: int  # minor + major page faults so far: every copy-on-write copy is one

    @property
    def alive(self) -> bool:
        """False for a zombie: it has exited and holds no memory, only its exit status."""
        return self.state != ZOMBIE


@dataclass(frozen=True)
class Rollup:
    """A process's memory from /proc/PID/smaps_rollup, in bytes."""

    rss: int
    pss: int  # each resident page divided by the number of processes mapping it
    uss: int  # pages mapped by this process alone (Private_Clean + Private_Dirty)


def read_stat(pid: int, proc: str = PROC) -> ProcStat | None:
    """The process's stat, or None when it is gone (or cannot be read)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields after it follow its last ")".
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return ProcStat(
            pid=pid,
            ppid=int(rest[1]),
            state=rest[0].decode(),
            start=int(rest[19]),
            rss_bytes=int(rest[21]) * PAGE_SIZE,
            faults=int(rest[7]) + int(rest[9]),
        )
    except (IndexError, ValueError):
        return None


def read_rollup(pid: int, proc: str = PROC) -> Rollup | None:
    """The process's RSS, PSS and USS from smaps_rollup, or None when it is gone or has no memory."""
    fields: dict[bytes, int] = {}
    try:
        with open(f"{proc}/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                name, _, value = line.partition(b":")
                parts = value.split()
                if parts and parts[-1] == b"kB":
                    fields[name] = int(parts[0]) * 1024
    except (OSError, ValueError):
        return None
    if b"Pss" not in fields:
        return None  # a zombie or kernel thread: an empty file
    private = fields.get(b"Private_Clean", 0) + fields.get(b"Private_Dirty", 0) + fields.get(b"Private_Hugetlb", 0)
    return Rollup(rss=fields.get(b"Rss", 0), pss=fields[b"Pss"], uss=private)


def list_pids(proc: str = PROC) -> list[int]:
    """Every process id in /proc."""
    try:
        return [int(name) for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return []


def children_files_supported(proc: str = PROC) -> bool:
    """True when the kernel lists each thread's children (/proc/PID/task/TID/children, CONFIG_PROC_CHILDREN)."""
    me = os.getpid()
    return os.path.exists(f"{proc}/{me}/task/{me}/children")


def read_children(pid: int, proc: str = PROC) -> list[int]:
    """The children of every thread of ``pid``, from the task children files."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"{proc}/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"{proc}/{pid}/task/{tid}/children", "rb") as handle:
                found += [int(child) for child in handle.read().split()]
        except (OSError, ValueError):
            continue
    return found


def descendants(root: int, proc: str = PROC) -> list[ProcStat]:
    """Every live process below ``root`` (not ``root`` itself), by one full pass over /proc."""
    if children_files_supported(proc):
        return _walk_children(root, proc)
    stats = [stat for stat in (read_stat(pid, proc) for pid in list_pids(proc)) if stat is not None]
    below: dict[int, list[ProcStat]] = {}
    for stat in stats:
        below.setdefault(stat.ppid, []).append(stat)
    found, frontier = [], [root]
    while frontier:
        for stat in below.get(frontier.pop(), []):
            found.append(stat)
            frontier.append(stat.pid)
    return [stat for stat in found if stat.alive]


def _walk_children(root: int, proc: str) -> list[ProcStat]:
    found, frontier, seen = [], [root], {root}
    while frontier:
        for child in read_children(frontier.pop(), proc):
            if child in seen:
                continue
            seen.add(child)
            stat = read_stat(child, proc)
            if stat is not None:
                found.append(stat)
                frontier.append(child)
    return [stat for stat in found if stat.alive]


class Scanner:
    """The descendants of ``root``, sample after sample, without reading every process's stat each time.

    Membership never changes for a given ``(pid, start)``: a process outside
    the tree cannot move into it (an orphan is adopted by its nearest subreaper
    ancestor or init, and ``root``, the keeper, is an ancestor of the tree only),
    and one inside stays inside while the keeper lives.  So each sample lists
    /proc, reads the stat of new pids and of the tree's members only, and
    remembers the verdict on everyone else.  A pid that exits and is reused
    between two listings would keep a stale verdict, so every ``refresh_s`` all
    verdicts are dropped and read afresh.  Where the kernel lists children
    (CONFIG_PROC_CHILDREN) the tree is walked from ``root`` instead.
    """

    def __init__(self, root: int, proc: str = PROC, refresh_s: float = 1.0) -> None:
        self.root = root
        self.proc = proc
        self.refresh_s = refresh_s
        self.method = "task-children" if children_files_supported(proc) else "proc-scan"
        self._verdicts: dict[int, tuple[int, bool]] = {}  # pid -> (start, in the tree)
        self._refreshed_at = time.monotonic()

    def members(self) -> list[ProcStat]:
        """The live descendants of ``root`` now, with their stat."""
        if self.method == "task-children":
            return _walk_children(self.root, self.proc)
        now = time.monotonic()
        if now - self._refreshed_at >= self.refresh_s:
            self._verdicts = {pid: verdict for pid, verdict in self._verdicts.items() if verdict[1]}
            self._refreshed_at = now
        pids = list_pids(self.proc)
        stats: dict[int, ProcStat] = {}
        for pid in pids:
            verdict = self._verdicts.get(pid)
            if pid != self.root and (verdict is None or verdict[1]):
                stat = read_stat(pid, self.proc)
                if stat is not None:
                    stats[pid] = stat
        present = set(pids)
        self._verdicts = {pid: v for pid, v in self._verdicts.items() if pid in present}
        for pid, stat in stats.items():
            verdict = self._verdicts.get(pid)
            if verdict is not None and verdict[0] != stat.start:
                del self._verdicts[pid]  # the pid was reused: judge the new process afresh
        for pid in stats:
            self._judge(pid, stats)
        return [stat for pid, stat in stats.items() if self._verdicts[pid][1] and stat.alive]

    def _judge(self, pid: int, stats: dict[int, ProcStat]) -> bool:
        """Whether ``pid`` is below root: follow its parents up to root or a process already judged."""
        chain = []
        current = pid
        while current != self.root and current not in self._verdicts and current in stats:
            chain.append(current)
            current = stats[current].ppid
        if current == self.root:
            inside = True
        elif current in self._verdicts:
            inside = self._verdicts[current][1]
        else:
            inside = False  # its parent is gone or unreadable, or pid 0
        for member in chain:
            self._verdicts[member] = (stats[member].start, inside)
        return inside


def signal_process(stat: ProcStat, signum: int, proc: str = PROC) -> bool:
    """Send ``signum`` to the process ``stat`` names, never to another that took its pid; True if sent.

    With a pidfd (Linux 5.3 and later) the check and the signal cannot be told
    apart by a reuse in between: the pidfd pins the process the start time was
    read for.  Without one, the start time is checked just before the signal.
    """
    pidfd = -1
    try:
        pidfd = os.pidfd_open(stat.pid) if hasattr(os, "pidfd_open") else -1
    except OSError:
        return False  # gone
    try:
        current = read_stat(stat.pid, proc)
        if current is None or current.start != stat.start:
            return False
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(stat.pid, signum)
        return True
    except OSError:
        return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)
