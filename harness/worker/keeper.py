"""The keeper: the worker's first process, which forks the trainer and makes sure nothing of the run outlives it.

``python -m harness.worker`` starts as the keeper.  Before anything of the
user's is imported it makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``:
every process the training code orphans is adopted by the keeper, not by init,
whatever session or process group it moved to), then forks.  The child is the
trainer, "the worker" whose memory is recorded; the keeper stays a small loop
that runs no user code, so it cannot be stuck in it:

- SIGTERM and SIGINT from the parent are passed to the trainer (which stops
  between or inside epochs and still sends its last records);
- when the parent dies, even by SIGKILL, the keeper learns it twice over: its
  parent-death signal (SIGHUP) and the end of file on a lifeline pipe whose
  other end only the parent holds.  It then SIGKILLs the trainer;
- when the trainer has ended, for whatever reason, the keeper SIGKILLs every
  descendant it still has (:func:`sweep`, again and again until none is left,
  so a process forked meanwhile is caught too), reaps them, and exits the way
  the trainer did (same exit status, or killed by the same signal), so the
  parent sees the trainer's ending.

The trainer dies with the keeper (``PR_SET_PDEATHSIG`` SIGKILL), so killing
the keeper last never leaves the trainer behind.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import sys
import time
from typing import Any, NoReturn

from harness.worker import procfs
from harness.worker.process import die_with_parent, set_subreaper

PARENT_GONE = signal.SIGHUP  # the keeper's parent-death signal: it has no terminal, so no other SIGHUP comes
FORWARDED = (signal.SIGTERM, signal.SIGINT)
HANDLED = (*FORWARDED, PARENT_GONE, signal.SIGCHLD)
SWEEP_S = 5.0  # give up on processes that will not die (stuck in the kernel) after this long
POLL_MS = 1000  # a missed wake-up costs at most this long


class _State:
    """What the keeper's signal handlers tell its loop."""

    def __init__(self) -> None:
        self.keeper = os.getpid()
        self.trainer = 0
        self.forward: list[int] = []
        self.parent_gone = False

    def handler(self, signum: int, frame: Any) -> None:
        if os.getpid() != self.keeper:
            return  # a copy of this handler in a child, before it resets them: not ours to act on
        if signum in FORWARDED:
            self.forward.append(signum)
        elif signum == PARENT_GONE:
            self.parent_gone = True


def start(parent_pid: int | None, lifeline_fd: int | None, record_fd: int | None) -> None:
    """Become the keeper and fork the trainer; returns in the trainer only (the keeper exits when it is done)."""
    set_subreaper()
    die_with_parent(parent_pid, PARENT_GONE)
    state = _State()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    # Signals wait while the handlers are swapped and the process forks: a SIGTERM in that
    # window reaches the keeper after the fork and is passed on, and the trainer starts clean.
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    previous = {signum: signal.signal(signum, state.handler) for signum in HANDLED}
    signal.set_wakeup_fd(wake_write)
    sys.stdout.flush()
    sys.stderr.flush()
    trainer = os.fork()
    if trainer == 0:
        signal.set_wakeup_fd(-1)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for fd in (wake_read, wake_write, lifeline_fd):
            if fd is not None:
                os.close(fd)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        die_with_parent(state.keeper, signal.SIGKILL)
        return
    state.trainer = trainer
    if record_fd is not None:
        os.close(record_fd)  # the parent reads to the trainer's end of file, not the keeper's
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
    _keep(state, lifeline_fd, wake_read)


def _keep(state: _State, lifeline_fd: int | None, wake_read: int) -> NoReturn:
    """Wait for the trainer's end, passing signals on; then sweep and exit as the trainer did."""
    poller = select.poll()
    poller.register(wake_read, select.POLLIN)
    if lifeline_fd is not None:
        poller.register(lifeline_fd, select.POLLIN | select.POLLHUP)
    status = None
    killed_trainer = False
    while status is None:
        status = _reap(state.trainer)
        while state.forward:
            _kill(state.trainer, state.forward.pop(0))
        if state.parent_gone and not killed_trainer:
            killed_trainer = True
            _kill(state.trainer, signal.SIGKILL)
        if status is not None:
            break
        for fd, _ in poller.poll(POLL_MS):
            if fd == lifeline_fd:
                try:
                    ended = not os.read(fd, 1 << 12)
                except OSError:
                    ended = True
                if ended:  # the parent is gone: nobody is watching this run any more
                    state.parent_gone = True
                    poller.unregister(fd)
            else:
                _drain(fd)
    left = sweep(state.keeper)
    if left:
        names = ", ".join(left[:10]) + (", ..." if len(left) > 10 else "")
        print(f"leakbench: killed {len(left)} process(es) the training code left running: {names}", file=sys.stderr)
    _exit_as(status)


def _reap(trainer: int) -> int | None:
    """Reap every child that has ended (orphans too); the trainer's wait status once it has."""
    status = None
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == trainer:
            status = code


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(OSError):  # already gone
        os.kill(pid, signum)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, OSError):
        pass


def _name(stat: procfs.ProcStat) -> str:
    try:
        with open(f"{procfs.PROC}/{stat.pid}/comm", encoding="utf-8", errors="replace") as handle:
            return f"{stat.pid} ({handle.read().strip()})"
    except OSError:
        return str(stat.pid)


def sweep(root: int, deadline_s: float = SWEEP_S) -> list[str]:
    """SIGKILL every descendant of ``root`` (this process) until none is left; the ones killed, as "pid (name)"."""
    killed: dict[int, str] = {}
    deadline = time.monotonic() + deadline_s
    while True:
        _reap(-1)
        victims = procfs.descendants(root)
        if not victims or time.monotonic() > deadline:
            return list(killed.values())
        for stat in victims:
            if stat.pid not in killed:
                killed[stat.pid] = _name(stat)
            procfs.signal_process(stat, signal.SIGKILL)
        time.sleep(0.002)  # let the kernel tear them down and reparent their children here


def _exit_as(status: int) -> NoReturn:
    """Exit the way the trainer did: its exit code, or death by its signal (without a core dump)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # their handlers cannot be changed
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # a signal whose default is not to terminate
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
