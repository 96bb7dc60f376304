"""Perform one planned run: ``harness run`` in a subprocess that cannot outlive its sweep, seated on the machine.

The same code runs a run in a sweep's own thread (``--jobs``) and in a Dask
worker's task (``--scheduler``).  The subprocess gets the pid it must not
outlive (``LEAKBENCH_PARENT_PID``: ``run`` sets its parent-death signal to
SIGTERM and checks that pid, so a sweep or Dask worker killed even by SIGKILL
stops its runs as ``interrupted``), the sweep client's pinned environment
(:mod:`harness.sweep.machine`), and any claim descriptors to hold.  While it
runs it holds a seat on the machine; when it has ended its meta.json gets a
``schedule``: how it was placed, how many runs shared the machine with it, the
load average at its start and end, and its growth is judged again so the
projection counts the runs alongside.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.errors import UsageError
from harness.growth import summarise_run
from harness.records import RUNNING
from harness.storage import META, load_run, read_meta, write_meta
from harness.sweep import machine
from harness.worker.process import PARENT_PID_VARIABLE

STOP_GRACE_S = 30.0
POLL_S = 0.5


class Runner(Protocol):
    """Performs one ``harness run`` command line to its end (tests give a fake one)."""

    def __call__(
        self, argv: list[str], env: Mapping[str, str], keep_fds: Sequence[int], stopping: Callable[[], bool]
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv``; stop it with SIGTERM once ``stopping()`` is true."""
        ...


@dataclass(frozen=True)
class Placement:
    """Where and how a sweep places a run: what its ``schedule`` in meta.json starts from."""

    sweep: str
    scheduler: str  # "local" (--jobs), or the Dask scheduler's address
    slots: int  # runs this machine (or Dask worker) takes at once
    exclusive: bool  # a timing run or one judged on PSS: the machine to itself
    cap_bytes: int
    budget_bytes: int  # the memory the caps of the runs on this machine must fit in
    environment: Mapping[str, str | None]  # the pinned variables, as the sweep client has them


def run_subprocess(
    argv: list[str], env: Mapping[str, str], keep_fds: Sequence[int], stopping: Callable[[], bool]
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and capture what it prints; once ``stopping()`` is true, SIGTERM it so it records its end."""
    env = dict(env) | {PARENT_PID_VARIABLE: str(os.getpid())}
    # The parent-death signal fires when the *thread* that started the child ends, not the process: this thread
    # waits for the child to its end, so only the death of the sweep (or Dask worker) itself sets it off.
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, pass_fds=tuple(keep_fds)
    ) as process:
        try:
            while True:
                try:
                    # A retried communicate() loses nothing of what was read before its timeout.
                    stdout, stderr = process.communicate(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    if stopping():
                        stdout, stderr = _stop(process)
                        break
        except BaseException:
            process.kill()
            raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM makes `run` stop its worker and mark the run interrupted; only if it does not end in time is it killed
    (killing it outright could leave its worker behind)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def perform(
    argv: list[str],
    placement: Placement,
    runner: Runner = run_subprocess,
    keep_fds: Sequence[int] = (),
    stopping: Callable[[], bool] = lambda: False,
) -> subprocess.CompletedProcess[str]:
    """Run one ``harness run`` seated on this machine, then record its ``schedule`` in its meta.json."""
    with machine.seat(placement.cap_bytes, placement.exclusive) as seat:
        start = machine.load_average()
        result = runner(argv, machine.run_environment(placement.environment), keep_fds, stopping)
        shared = seat.shared_with()
    run_dir = printed_run_dir(result.stdout)
    if run_dir is not None:
        share = max(placement.cap_bytes, placement.budget_bytes - seat.alongside_caps_bytes)
        schedule = {
            "sweep": placement.sweep,
            "scheduler": placement.scheduler,
            "slots": placement.slots,
            "exclusive": placement.exclusive,
            "shared_with": shared,
            "alongside_at_start": len(seat.alongside),
            "load_average_start": start,
            "load_average_end": machine.load_average(),
            "memory_budget_bytes": placement.budget_bytes,
            "memory_share_bytes": share,
            "alongside_caps_bytes": seat.alongside_caps_bytes,
            "environment": {name: value for name, value in placement.environment.items() if value is not None},
        }
        record_schedule(run_dir, schedule)
    return result


def record_schedule(run_dir: Path, schedule: Mapping[str, Any]) -> None:
    """Add ``schedule`` to a finished run's meta.json and judge its growth again with it."""
    meta = read_meta(run_dir)
    if meta is None or meta.get("status") == RUNNING:
        return
    meta["schedule"] = dict(schedule)
    if meta.get("growth"):
        with contextlib.suppress(UsageError):  # a run that cannot be read keeps the growth its recorder stored
            meta["growth"] = summarise_run(load_run(run_dir).epochs, meta)
    write_meta(run_dir, meta)


def printed_run_dir(stdout: str) -> Path | None:
    """The run directory ``harness run`` printed (its last line), if it holds a meta.json."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    run_dir = Path(lines[-1].strip()) if lines else None
    if run_dir is None or not (run_dir / META).is_file():
        run_dir = next((Path(w) for w in reversed(stdout.split()) if (Path(w) / META).is_file()), None)
    return run_dir


@dataclass
class Finished:
    """A run a backend performed (or tried to): what ``harness run`` returned, the claim it held, its wall time."""

    index: int  # its place in the spec
    run: Any  # PlannedRun
    claim: Any  # claims.Claim
    result: subprocess.CompletedProcess[str]
    seconds: float


class Backend(Protocol):
    """Where a sweep's runs are performed: this machine's threads (--jobs) or a Dask cluster (--scheduler)."""

    slots: int  # runs performed at once (for the ETA)

    def check(self, runs: Sequence[Any]) -> None:
        """UsageError, before anything runs, when some run could never start (its cap above every budget)."""
        ...

    def admits(self, run: Any) -> bool:
        """Whether ``run`` may start now (the spec's order is kept: a run that does not fit waits)."""
        ...

    def submit(self, index: int, run: Any, claim: Any) -> None:
        """Start ``run`` (claimed); it ends up in :meth:`finished`."""
        ...

    def busy(self) -> bool:
        """Whether any run is in flight."""
        ...

    def finished(self, timeout: float | None) -> list[Finished]:
        """The runs that ended, waiting up to ``timeout`` seconds for one."""
        ...

    def stop(self) -> list[Finished]:
        """Stop every run in flight (each records itself as interrupted) and return them once ended."""
        ...

    def close(self) -> None:
        """Let go of threads, connections and clusters."""
        ...
