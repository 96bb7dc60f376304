"""Running a bench plan: each job in a fresh child, with the thread variables set before NumPy or torch loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness import recording, records, storage
from harness.bench.plan import LOOP, MATMUL, MATMUL_REPEATS, MATMUL_SIZE, RUN, Job, Plan
from harness.bench.results import Outcome, pair_rates
from harness.bench.turns import TurnTaker, kept_off, shared_cpu

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
JOB_TIMEOUT_S = 600.0


class MeasurementError(Exception):
    """A job failed (the training code raised, or the child crashed): the bench cannot continue."""


def execute_plan(
    plan: Plan, measure: Callable[[Job], Outcome], on_done: Callable[[int, int, Outcome], None] | None = None
) -> list[Outcome]:
    """Run every job in order with ``measure``; a variant skipped once is not started again."""
    jobs = plan.jobs()
    skipped: dict[str, str] = {}
    outcomes = []
    for index, job in enumerate(jobs, start=1):
        if job.variant in skipped:
            outcome = Outcome(job, skipped=skipped[job.variant])
        else:
            outcome = measure(job)
            if outcome.skipped is not None and job.variant is not None:
                skipped[job.variant] = outcome.skipped
        outcomes.append(outcome)
        if on_done is not None:
            on_done(index, len(jobs), outcome)
    return outcomes


def child_environment(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment) with every thread variable set to ``threads``."""
    environment = dict(os.environ if base is None else base)
    environment.update({name: str(threads) for name in THREAD_VARIABLES})
    return environment


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set os.environ for children started inside (recording.execute has no env argument); restore after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Measurer:
    """Runs one job in a fresh child: ``python -m harness.bench.child``, or the real runner for RUN jobs."""

    plan: Plan
    results_dir: Path  # run directories of the overhead jobs (a temporary directory)
    timeout_s: float = JOB_TIMEOUT_S
    environment: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.environment = child_environment(self.plan.threads)

    def __call__(self, job: Job) -> Outcome:
        """Measure ``job``; MeasurementError when it fails."""
        if job.kind == RUN:
            return self._in_run(job)
        if job.kind == MATMUL:
            payload: dict[str, Any] = {"kind": MATMUL, "size": MATMUL_SIZE, "repeats": MATMUL_REPEATS}
        else:
            payload = self._loop_payload(job)
        message = self._child(job, payload)
        if message["type"] == "skipped":
            return Outcome(job, skipped=str(message["reason"]))
        if job.kind == MATMUL:
            return Outcome(job, flops_per_s=float(message["flops_per_s"]))
        flops = message.get("flops_per_epoch")
        return Outcome(
            job,
            epoch_s=tuple(message["epoch_s"]),
            ends_s=tuple(message["ends_s"]),
            flops_per_epoch=None if flops is None else int(flops),
        )

    def _child(self, job: Job, payload: dict[str, Any]) -> dict[str, Any]:
        with _Child(payload, self.environment) as child:
            child.wait(job, self.timeout_s)
            return child.message(job)

    def _loop_payload(self, job: Job) -> dict[str, Any]:
        return {"kind": LOOP, "variant": job.variant, "config": self.plan.config(job).to_dict()}

    def _in_run(self, job: Job) -> Outcome:
        """numpy under ``run`` and a bare loop in a child, taking turns on one CPU (:mod:`~harness.bench.turns`)."""
        request = recording.RunRequest(
            variant=str(job.variant), config=self.plan.config(job), results_dir=self.results_dir
        )
        cpu = shared_cpu()
        with _Child(self._loop_payload(job), self.environment) as bare:
            turns = TurnTaker(lambda: bare.process.pid, _run_trainer, cpu=cpu)
            turns.start()
            try:
                with _environment({name: self.environment[name] for name in THREAD_VARIABLES}), kept_off(cpu):
                    outcome = recording.execute(request, handle_signals=False)
                bare.wait(job, self.timeout_s)
            finally:
                turns.finish()  # before the child is reaped: its pid is never signalled once it may be reused
            partner = bare.message(job)
        if outcome.status != records.COMPLETED:
            message = (outcome.stop or {}).get("message", "")
            raise MeasurementError(f"{job.label} (round {job.round}) ended {outcome.status}: {message}")
        epochs = storage.load_run(outcome.run_dir).epochs
        result = Outcome(
            job,
            epoch_s=tuple(map(float, epochs["epoch_s"])),
            ends_s=tuple(map(float, epochs["elapsed_s"])),
            partner_ends_s=tuple(partner["ends_s"]),
        )
        try:
            pair_rates(result)  # epochs too long for the turns: say so here, not as a traceback in the summary
        except ValueError as exc:
            raise MeasurementError(f"{job.label} (round {job.round}): {exc}") from None
        return result


def _run_trainer() -> int | None:
    """The trainer of the run this process is recording (the child of its worker's keeper), once it exists."""
    for child in psutil.Process().children():
        try:
            command = child.cmdline()
            if "harness.worker" in command and "--job" in command:
                trainers = child.children()
                return trainers[0].pid if trainers else None
        except psutil.Error:
            continue  # a check worker that has just ended
    return None


class _Child:
    """``python -m harness.bench.child`` on one job: its messages and its output each go to a file of their own."""

    def __init__(self, payload: dict[str, Any], environment: dict[str, str]) -> None:
        self.channel = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in __exit__
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in __exit__
        command = [sys.executable, "-m", "harness.bench.child", "--fd", str(self.channel.fileno()), json.dumps(payload)]
        # Files, not pipes: the child never blocks on a write, however long its message.
        self.process = subprocess.Popen(
            command,
            pass_fds=(self.channel.fileno(),),
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )

    def __enter__(self) -> _Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.channel.close()
        self.log.close()

    def wait(self, job: Job, timeout_s: float) -> None:
        """Wait for the child to end; MeasurementError past ``timeout_s``."""
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise MeasurementError(f"{job.label} (round {job.round}) took longer than {timeout_s:g} s") from None

    def message(self, job: Job) -> dict[str, Any]:
        """The child's last message; MeasurementError when it failed."""
        self.channel.seek(0)
        lines = self.channel.read().decode(errors="replace").splitlines()
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace").strip().splitlines()[-1:]
        message: dict[str, Any] = json.loads(lines[-1]) if lines else {"type": "error", "message": ""}
        if message["type"] == "error" or self.process.returncode != 0:
            code = self.process.returncode
            detail = message.get("message") or (tail[0] if tail else f"the child exited with status {code}")
            raise MeasurementError(f"{job.label} (round {job.round}) failed: {detail}")
        return message
