"""The worker process itself: its memory now, its allocation limit, and dying with its parent.

Safety: the worker asks the kernel to SIGKILL it if the parent dies (Linux
``PR_SET_PDEATHSIG``), and when the job carries ``memory_limit_bytes`` it sets
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


def die_with_parent(parent_pid: int | None) -> None:
    """Have the kernel SIGKILL this process when the parent dies (Linux only; best effort elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before prctl took effect


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
