"""Where a trace point is taken: in a forked child of the trainer, so the trainer's memory never sees the tracer's.

Why.  A trace point builds a snapshot of every traced block (a tuple each), a
sorted copy of it and a list of every live container: tens of MiB for a small
loop, over a hundred with a large heap (about 50 bytes per traced block).
Taken in the trainer and freed at once, it stays in glibc's heap (and raises
its mmap threshold, so later large arrays come from that heap too); a leak
then refills that freed memory with no change in RSS, for as many epochs as
the jump divided by the leak's rate: ``--trace`` hid leaks of 48 KiB to 1 MiB
per epoch for tens of epochs.  A forked child sees the trainer's heap as it
was at the fork (copy-on-write), does all of the work and writes trace.json;
the trainer allocates nothing and waits for it.

Safety.  The child sets its name (``leakbench-trace``), dies with the trainer
(``PR_SET_PDEATHSIG``), takes the default SIGTERM and SIGINT, never collects
garbage (a collection there would run the trainer's finalisers a second time:
a garbage multiprocessing pool's would end the loop's own workers) and leaves
with ``os._exit``.  The trainer tells the parent its pid before it waits
(``announce``), so the parent's sampler leaves it out of the tree's figures and
of the memory cap while still ending it with the run; a child that takes longer
than its timeout is killed, so a fork that deadlocked (another thread held a
lock tracemalloc needs) costs a trace, never the run.  Where there is no fork,
or the machine has less memory available than the trainer's RSS (the child's
copies of the pages it touches could approach the trainer's heap), the work
runs in the trainer instead and ``malloc_trim`` gives the freed heap back; the
RSS that stays raised is recorded (``rss_left_bytes``) and ``run`` warns.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from harness.worker.process import die_with_parent, memory_now

OK, DEEPEN, FAILED = 0, 3, 1  # the work's exit codes: done, done but deeper tracebacks are needed, failed
NAME = b"leakbench-trace"
PR_SET_NAME = 15
POLL_S = 0.05  # how often a waiting trainer looks at whether it was asked to stop
# Other threads' thread-local dicts, held across a fork (see _thread_locals); keepers name this list for what it is.
HELD_THREAD_LOCALS: list[object] = []


@dataclass(frozen=True)
class Outcome:
    """How one piece of tracer work ended: "ok", "deepen", "failed", "timeout" or "abandoned"; and its seconds."""

    result: str
    seconds: float
    rss_left_bytes: int = 0  # in-process work only: RSS it left raised after malloc_trim


def can_fork() -> bool:
    """Fork when the machine has at least the trainer's RSS available (MemAvailable), and fork exists."""
    if not hasattr(os, "fork"):
        return False
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith(b"MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return True
    return available >= memory_now()[0]


def _thread_locals() -> list[object]:
    """Every other thread's ``threading.local`` dicts: a fork clears other threads' states and with them these.

    Held across the fork so that the child still sees (and can attribute) what
    the loop's threads keep in thread-local storage, e.g. a pool's per-thread
    buffers.  Found through the type, without listing every live object.
    """
    if threading.active_count() < 2:
        return []
    kinds = [threading.local]
    for kind in kinds:
        kinds.extend(kind.__subclasses__())
    found: list[object] = []
    for kind in kinds:
        for local in gc.get_referrers(kind):
            if isinstance(local, threading.local):
                for inner in gc.get_referents(local):
                    if isinstance(inner, dict):  # {weakref to a thread's dummy: that thread's dict}
                        found.extend(value for value in inner.values() if isinstance(value, dict))
    return found


def _child(work: Callable[[], int], trainer: int, report: int) -> None:
    """The forked child: make it safe, do the work, report its code on the pipe, leave without cleanup."""
    code = FAILED
    try:
        die_with_parent(trainer, signal.SIGKILL)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_NAME, ctypes.c_char_p(NAME), 0, 0, 0)
        gc.disable()
        gc.unfreeze()  # frozen objects are invisible to gc.get_objects and gc.get_referrers
        code = work()
    except BaseException:  # noqa: BLE001 -- anything: the trainer only learns the code
        traceback.print_exc()
    finally:
        try:
            os.write(report, bytes([code & 0xFF]))
            sys.stderr.flush()
        finally:
            os._exit(code)


def run_forked(
    work: Callable[[], int],
    *,
    timeout_s: float,
    announce: Callable[[int | None, bool], None] | None = None,
    abandon: Callable[[], bool] | None = None,
) -> Outcome:
    """Run ``work`` (returning OK, DEEPEN or FAILED) in a forked child and wait for it, at most ``timeout_s``.

    ``announce(pid, ended)`` is called before the fork (pid None), after it and
    after the child is gone; ``abandon()`` true kills the child early (the run
    is being stopped).
    """
    started = time.monotonic()
    HELD_THREAD_LOCALS[:] = _thread_locals()
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    if announce is not None:
        announce(None, False)  # before the fork: the parent then leaves a new child of the trainer out at once
    try:
        pid = os.fork()
    except OSError:
        for fd in (read_end, write_end):
            os.close(fd)
        if announce is not None:
            announce(None, True)
        return Outcome("failed", time.monotonic() - started)
    if pid == 0:
        os.close(read_end)
        _child(work, os.getppid(), write_end)
    os.close(write_end)
    HELD_THREAD_LOCALS.clear()  # the child has its copy
    if announce is not None:
        announce(pid, False)
    try:
        result = _wait(pid, read_end, started + timeout_s, abandon)
    finally:
        os.close(read_end)
        if announce is not None:
            announce(pid, True)
    return Outcome(result, time.monotonic() - started)


def _wait(pid: int, read_end: int, deadline: float, abandon: Callable[[], bool] | None) -> str:
    """The child's result: its code read from the pipe; killed at the deadline or when abandoned."""
    poller = select.poll()
    poller.register(read_end, select.POLLIN | select.POLLHUP)
    code: int | None = None
    result = "failed"
    while True:
        if poller.poll(int(POLL_S * 1000)):
            data = os.read(read_end, 1)
            code = data[0] if data else code
            break
        if abandon is not None and abandon():
            result = "abandoned"
            break
        if time.monotonic() > deadline:
            result = "timeout"
            break
    if code is None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    # ChildProcessError: the loop's code reaped it (a waitpid(-1) of its own); the pipe said how it ended.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    if code is None:
        return result
    return {OK: "ok", DEEPEN: "deepen"}.get(code, "failed")


def run_here(work: Callable[[], int]) -> Outcome:
    """Run ``work`` in this process (no fork possible), then give freed memory back; what RSS stayed raised."""
    started = time.monotonic()
    before = memory_now()[0]
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    try:
        code = work()
    except Exception:  # noqa: BLE001 -- a failed trace must not fail the run
        traceback.print_exc()
        code = FAILED
    finally:
        if frozen:
            gc.freeze()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    left = max(0, memory_now()[0] - before)
    return Outcome({OK: "ok", DEEPEN: "deepen"}.get(code, "failed"), time.monotonic() - started, left)
