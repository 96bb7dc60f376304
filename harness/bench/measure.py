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

from harness import recording, records, storage
from harness.bench.plan import MATMUL, MATMUL_REPEATS, MATMUL_SIZE, RUN, Job, Plan
from harness.bench.results import Outcome

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
        payload: dict[str, Any] = {"kind": job.kind}
        if job.kind == MATMUL:
            payload |= {"size": MATMUL_SIZE, "repeats": MATMUL_REPEATS}
        else:
            payload |= {"variant": job.variant, "config": self.plan.config(job).to_dict()}
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
        # The child's messages go to a file of their own (never blocks, however long), its output to another.
        with tempfile.TemporaryFile() as channel, tempfile.TemporaryFile() as log:
            command = [sys.executable, "-m", "harness.bench.child", "--fd", str(channel.fileno()), json.dumps(payload)]
            try:
                done = subprocess.run(
                    command,
                    pass_fds=(channel.fileno(),),
                    env=self.environment,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    timeout=self.timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise MeasurementError(
                    f"{job.label} (round {job.round}) took longer than {self.timeout_s:g} s"
                ) from None
            channel.seek(0)
            lines = channel.read().decode(errors="replace").splitlines()
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
        message: dict[str, Any] = json.loads(lines[-1]) if lines else {"type": "error", "message": ""}
        if message["type"] == "error" or done.returncode != 0:
            detail = message.get("message") or (tail[0] if tail else f"the child exited with status {done.returncode}")
            raise MeasurementError(f"{job.label} (round {job.round}) failed: {detail}")
        return message

    def _in_run(self, job: Job) -> Outcome:
        request = recording.RunRequest(
            variant=str(job.variant), config=self.plan.config(job), results_dir=self.results_dir
        )
        with _environment({name: self.environment[name] for name in THREAD_VARIABLES}):
            outcome = recording.execute(request, handle_signals=False)
        if outcome.status != records.COMPLETED:
            message = (outcome.stop or {}).get("message", "")
            raise MeasurementError(f"{job.label} (round {job.round}) ended {outcome.status}: {message}")
        epochs = storage.load_run(outcome.run_dir).epochs
        return Outcome(job, epoch_s=tuple(map(float, epochs["epoch_s"])), ends_s=tuple(map(float, epochs["elapsed_s"])))
