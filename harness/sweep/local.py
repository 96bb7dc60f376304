"""``sweep --jobs N``: up to N runs at once on this machine, each a ``harness run`` driven by a thread.

Each run is already its own process tree with its own worker, cap and
sampling, so a thread that starts it and waits is all it takes: nothing to
pickle, no engine to start, nothing added to the runs' environment, no new
dependency.  A run starts when its slots (one; all N for a timing run
or one judged on PSS) and its
memory cap fit (:class:`harness.sweep.budget.Admission`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from subprocess import CompletedProcess

from harness.sweep import budget, launch, machine
from harness.sweep.claims import Claim
from harness.sweep.planned import PlannedRun


class LocalPool:
    """A :class:`harness.sweep.launch.Backend` of threads on this machine."""

    def __init__(
        self,
        sweep: str,
        results_dir: Path,
        jobs: int,
        budget_bytes: int,
        runner: launch.Runner = launch.run_subprocess,
        strict: bool = True,
    ) -> None:
        self.sweep, self.results_dir, self.slots, self.runner = sweep, results_dir, jobs, runner
        self.strict = strict  # a budget the user gave: a run whose cap is above it is refused
        self.budget_bytes = budget_bytes
        self.default_cap = budget.share(budget_bytes, jobs)
        self.admission = budget.Admission(jobs, budget_bytes)
        self.environment = machine.client_environment()
        self._executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sweep-run")
        self._stopping = threading.Event()
        self._flight: dict[Future[CompletedProcess[str]], tuple[int, PlannedRun, Claim, int, float]] = {}

    def check(self, runs: Sequence[PlannedRun]) -> None:
        """UsageError when a run's cap alone is above a budget the user gave."""
        if self.strict:
            budget.check_fits(runs, self.budget_bytes, self.default_cap, "the memory budget (--memory-budget)")

    def admits(self, run: PlannedRun) -> bool:
        """Whether its slots and its cap fit now."""
        return self.admission.admits(run, budget.cap_of(run, self.default_cap))

    def submit(self, index: int, run: PlannedRun, claim: Claim) -> None:
        """Start the run in a thread; its ``harness run`` inherits the claim, so the claim lasts as long as it."""
        cap = budget.cap_of(run, self.default_cap)
        self.admission.take(run, cap)
        placement = launch.Placement(
            self.sweep, "local", self.slots, run.alone, cap, self.budget_bytes, self.environment
        )
        argv = run.argv(self.results_dir, memory_cap=str(cap))
        future = self._executor.submit(launch.perform, argv, placement, self.runner, (claim.fd,), self._stopping.is_set)
        self._flight[future] = (index, run, claim, cap, time.monotonic())

    def busy(self) -> bool:
        """Whether a run is in flight."""
        return bool(self._flight)

    def finished(self, timeout: float | None) -> list[launch.Finished]:
        """The runs that ended, waiting up to ``timeout`` for one."""
        if not self._flight:
            return []
        done, _ = wait(list(self._flight), timeout=timeout, return_when=FIRST_COMPLETED)
        ended = []
        for future in done:
            index, run, claim, cap, begin = self._flight.pop(future)
            self.admission.give(run, cap)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a run that could not be started is that run's error
                result = CompletedProcess([], -1, "", f"the sweep could not perform it: {type(exc).__name__}: {exc}")
            ended.append(launch.Finished(index, run, claim, result, time.monotonic() - begin))
        return ended

    def stop(self) -> list[launch.Finished]:
        """SIGTERM every run in flight (each records itself interrupted) and wait for them."""
        self._stopping.set()
        ended: list[launch.Finished] = []
        while self._flight:
            ended += self.finished(None)
        return ended

    def close(self) -> None:
        """End the threads (none is running a run by now)."""
        self._stopping.set()
        self._executor.shutdown(wait=True)
