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


def memory_now() -> tuple[int, int]:
    """(RSS, high-water RSS) of this process in bytes, from one read of /proc/self/status (about 20 us).

    The high-water mark is VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    from the parent across fork and exec, so it would start at the parent's size.
    Elsewhere: psutil's RSS and ru_maxrss.
    """
    rss = peak = -1
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    peak = int(line.split()[1]) * 1024  # reported in kB
                elif line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break  # VmRSS follows VmHWM
    except OSError:
        pass
    if rss < 0 or peak < 0:
        rss = psutil.Process().memory_info().rss
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = max(rss, maxrss if sys.platform == "darwin" else maxrss * 1024)  # bytes on macOS, KiB elsewhere
    return rss, peak
