"""Two trainers taking turns on one CPU, so that a shared machine's drift hits both alike.

On a shared host the same loop's speed wanders by 20 % and more from one
second to the next (other tenants' load), ten times the cost bench is asked to
resolve, so a bare loop and a run timed one after the other do not see the same
machine.  Two trainers that take turns every :data:`TURN_S` do: a controller
thread continues one (SIGCONT) and stops the other (SIGSTOP), both pinned to
one CPU.  Each process times its epochs as it always does; an epoch that a
pause fell into is longer than half a turn and is left out of its rate
(:func:`harness.bench.results.turn_rate`).  When one has finished, the other
keeps the same rhythm (a turn on, a turn off) until it finishes too.

Bare against bare on this project's 2-vCPU machine: in turns, 2,000 epochs
each, the two rates agreed within 3 % pair by pair (median ratio 0.994 over
six pairs); one after the other, a bare loop ran at 509 to 1,083 epochs/s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

import psutil

TURN_S = 0.02  # long against a 1-2 ms epoch (one in ten or more cut by a pause), short against the drift
FIND_S = 0.001  # how often the controller looks for a trainer that has not started yet

PidSource = Callable[[], int | None]  # the trainer's pid once it exists, else None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(process: psutil.Process, signum: int) -> None:
    # psutil's send_signal checks the pid was not reused by a new process since: never stop a stranger.
    with contextlib.suppress(psutil.Error):  # ended meanwhile
        process.send_signal(signum)


def _pin(process: psutil.Process, cpu: int | None) -> None:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return
    # Ended meanwhile, or the CPU was taken away: the turns still pair the two in time.
    with contextlib.suppress(psutil.Error, OSError, ValueError):
        process.cpu_affinity([cpu])


def shared_cpu() -> int | None:
    """The CPU both trainers are pinned to: the last this process may use (None where affinity is unknown)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


@contextlib.contextmanager
def kept_off(cpu: int | None) -> Iterator[None]:
    """Keep the calling thread, and the processes it starts meanwhile, off ``cpu`` (when there is another).

    The run's parent (bench's own thread) must not take the trainers' CPU from
    them in the run's turns only: that would count as the run's overhead.
    """
    allowed = os.sched_getaffinity(0) if cpu is not None and hasattr(os, "sched_setaffinity") else set()
    others = allowed - {cpu}
    if not others:
        yield
        return
    os.sched_setaffinity(0, others)
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


class TurnTaker(threading.Thread):
    """Alternate two trainers, each found by its :data:`PidSource`, until both have ended or :meth:`finish`.

    Until both exist, the one that does is kept stopped.  Whatever happens,
    every trainer it stopped is continued when it ends (``finish`` from a
    ``finally``): a stopped process must never be left behind.
    """

    def __init__(self, first: PidSource, second: PidSource, turn_s: float = TURN_S, cpu: int | None = None) -> None:
        super().__init__(name="leakbench-turns", daemon=True)
        self.sources = (first, second)
        self.turn_s = turn_s
        self.cpu = cpu
        self.processes: list[psutil.Process | None] = [None, None]
        self.turns = 0  # turns given, for tests and for the record
        self._done = threading.Event()

    def finish(self) -> None:
        """Stop taking turns, continue both trainers and wait for the thread."""
        self._done.set()
        if self.is_alive():
            self.join()
        self._continue_all()

    def run(self) -> None:
        try:
            while not self._done.is_set() and not self._found_both():
                self._done.wait(FIND_S)
            side = 1  # the second trainer (in bench, the run's: found last) goes first
            while not self._done.is_set():
                process = self.processes[side]
                if process is not None and _alive(process):
                    _signal(process, signal.SIGCONT)
                    self.turns += 1
                    self._done.wait(self.turn_s)
                    _signal(process, signal.SIGSTOP)
                elif not any(p is not None and _alive(p) for p in self.processes):
                    return
                else:
                    self._done.wait(self.turn_s)  # the survivor keeps its rhythm: a turn on, a turn off
                side = 1 - side
        finally:
            self._continue_all()

    def _found_both(self) -> bool:
        for index, source in enumerate(self.sources):
            if self.processes[index] is None:
                pid = source()
                if pid is not None:
                    try:
                        process = psutil.Process(pid)
                    except psutil.Error:
                        continue  # gone before it was found: looked for again, the source says
                    _signal(process, signal.SIGSTOP)
                    _pin(process, self.cpu)
                    self.processes[index] = process
        return all(process is not None for process in self.processes)

    def _continue_all(self) -> None:
        for process in self.processes:
            if process is not None:
                _signal(process, signal.SIGCONT)
