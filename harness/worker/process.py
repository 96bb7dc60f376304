"""The worker process itself: its memory now, its allocation limit, and dying with its parent.

Safety: each process of the worker asks the kernel to signal it if its parent
dies (Linux ``PR_SET_PDEATHSIG``; the keeper is told with SIGHUP, the trainer
is killed with SIGKILL: see :mod:`harness.worker.keeper`), the keeper adopts
the orphans of the training code (``PR_SET_CHILD_SUBREAPER``), and when the job carries ``memory_limit_bytes`` it sets
``RLIMIT_DATA`` to it, a backstop well above the parent's memory cap for
allocations faster than the parent's sampling: past it, allocations fail with
MemoryError instead of pushing the machine into its OOM killer.  RLIMIT_DATA is
used rather than RLIMIT_AS because address space that is only reserved (thread
stacks, OpenBLAS buffers, allocator arenas) does not count against it.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from collections.abc import Callable

import psutil

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Set by a sweep that starts `harness run`: the pid of the process (sweep or Dask worker) it must not outlive.
PARENT_PID_VARIABLE = "LEAKBENCH_PARENT_PID"


def _prctl(option: int, value: int) -> bool:
    """Linux prctl(option, value); False where there is none or it fails."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # Arguments 2-5 are unsigned longs: pass them at that width, not as C ints.
        args = [ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)]
        return int(libc.prctl(ctypes.c_int(option), *args)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent_pid: int | None, signum: int = signal.SIGKILL) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies (Linux only; best effort elsewhere)."""
    if not _prctl(PR_SET_PDEATHSIG, signum):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before prctl took effect


def set_subreaper() -> bool:
    """Adopt every orphaned descendant (instead of init adopting it); False where the kernel cannot."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def limit_memory(limit: int | None) -> None:
    """Set RLIMIT_DATA to ``limit`` bytes (not above the hard limit); nothing when ``limit`` is falsy."""
    if not limit:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def statm_reader() -> Callable[[], int] | None:
    """A function returning this process's RSS in bytes (about 1 us); None where there is no /proc.

    /proc/self/statm is opened once and re-read with pread (reading
    /proc/self/status took 20 us).  /proc/self is resolved when the file is
    opened: a forked child must get a reader of its own.
    """
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    pread, page = os.pread, PAGE  # locals: the line profiler calls this at every line

    def read() -> int:
        return int(pread(fd, 128, 0).split()[1]) * page

    return read


class _Statm:
    """This process's statm reader, made again after a fork."""

    def __init__(self) -> None:
        self.opened = False
        self.read: Callable[[], int] | None = None
        # A forked child must read its own file, not its parent's: a flag, not a getpid() at every reading.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.opened, self.read = False, None

    def rss(self) -> int:
        """This process's resident bytes; -1 where there is no /proc."""
        if not self.opened:
            self.opened, self.read = True, statm_reader()
        try:
            return self.read() if self.read is not None else -1
        except (OSError, IndexError, ValueError):
            return -1


_STATM = _Statm()


def memory_now() -> tuple[int, int]:
    """(RSS, high-water RSS) of this process in bytes: about 2 us, cheap enough for every epoch.

    RSS is statm's resident pages (the same count as VmRSS).  The high-water
    mark is ``ru_maxrss``: in the trainer, which is forked and never exec'd, it
    starts from the trainer's own pages and equals VmHWM once the trainer has
    grown past its start (ru_maxrss would carry a parent's peak over an exec,
    not over a fork).  Elsewhere: psutil's RSS.
    """
    rss = _STATM.rss()
    if rss < 0:
        rss = psutil.Process().memory_info().rss
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere
    return rss, max(rss, peak)
