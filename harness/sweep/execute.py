"""Sweeps: a spec's planned runs, performed by a backend, claimed one by one, resumable, with progress and a manifest.

Each run is ``python -m harness run ... --quiet --results DIR`` in a subprocess
(:mod:`harness.sweep.launch`), so it gets its own worker exactly as a user's
``run`` does; a backend performs them: this machine's threads (``--jobs N``,
:mod:`harness.sweep.local`) or a Dask cluster (``--scheduler``,
:mod:`harness.sweep.cluster`).  Runs start in the spec's order as the backend
admits them.  Before a run starts it is claimed (:mod:`harness.sweep.claims`)
and looked for again among the finished runs, so two sweeps sharing a results
directory perform each run once; one held by another sweep is left to it and
taken up again at the end (done by then, or performed here if that sweep died).
A run is not repeated when the results directory already holds a finished run
with its parameters (:mod:`harness.sweep.manifest`).

The spec format and its parsing live in :mod:`harness.sweep.spec`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import TextIO

from harness.formatting import format_duration
from harness.records import EXIT_CODES, FINISHED, INTERRUPTED, USAGE_EXIT_CODE
from harness.storage import read_meta
from harness.sweep import claims, launch
from harness.sweep.budget import default_budget
from harness.sweep.local import LocalPool
from harness.sweep.manifest import FinishedIndex, Outcome, write_manifest
from harness.sweep.planned import PlannedRun
from harness.sweep.spec import Spec

# Exit codes of `harness run` that end the whole sweep: the spec asked for something impossible,
# or the user pressed Ctrl-C.
STOPS_THE_SWEEP = (USAGE_EXIT_CODE, EXIT_CODES[INTERRUPTED])
# Exit codes of a run that recorded what it was asked to (a leak run may end at its memory cap).
RECORDED = tuple(EXIT_CODES[status] for status in FINISHED)
POLL_S = 0.5


class Eta:
    """Remaining time from the seconds per epoch measured so far, per variant and model."""

    def __init__(self) -> None:
        self._seconds: dict[tuple[str, bool], float] = {}
        self._epochs: dict[tuple[str, bool], int] = {}

    def record(self, run: PlannedRun, seconds: float) -> None:
        """Count a run that was actually performed."""
        key = (run.variant, run.fc_only)
        self._seconds[key] = self._seconds.get(key, 0.0) + seconds
        self._epochs[key] = self._epochs.get(key, 0) + run.epochs

    def remaining(self, runs: list[PlannedRun]) -> tuple[float, list[str]]:
        """Estimated seconds for the ``runs`` whose variant was measured, and the variants not measured yet."""
        total, unknown = 0.0, list[str]()
        for run in runs:
            key: tuple[str, bool] | None = (run.variant, run.fc_only)
            if key not in self._epochs:
                # Not timed for this model: the other model of the same variant is the best guess.
                key = next((k for k in self._epochs if k[0] == run.variant), None)
            if key is None:
                unknown.append(run.variant)
                continue
            total += self._seconds[key] / self._epochs[key] * run.epochs
        return total, list(dict.fromkeys(unknown))

    def describe(self, runs: list[PlannedRun], slots: int = 1) -> str:
        """``"ETA 1:05"``, or ``"ETA 1:05 + lists, torch (not timed yet)"``; ``slots`` runs at a time."""
        seconds, unknown = self.remaining(runs)
        seconds /= max(1, slots)
        if not unknown:
            return f"ETA {format_duration(seconds)}"
        return f"ETA {format_duration(seconds)} + {', '.join(unknown)} (not timed yet)"


class _Sweep:
    """One sweep in progress: the queue in spec order, the runs left to other sweeps, the outcomes so far."""

    def __init__(self, spec: Spec, results_dir: Path, log: TextIO, backend: launch.Backend) -> None:
        self.spec, self.results_dir, self.log, self.backend = spec, results_dir, log, backend
        self.index = FinishedIndex(results_dir)
        self.outcomes: list[Outcome | None] = [None] * len(spec.runs)
        self.queue = deque(enumerate(spec.runs))
        self.deferred: list[tuple[int, PlannedRun]] = []  # held by another sweep when their turn came
        self.running: set[int] = set()
        self.started, self.wall_start, self.eta, self.stopping = time.monotonic(), time.time(), Eta(), False

    def manifest(self) -> None:
        write_manifest(self.spec, self.results_dir, self.outcomes, sorted(self.running))

    def say(self, index: int, text: str) -> None:
        print(
            f"[{index + 1}/{len(self.spec.runs)}] {self.spec.runs[index].describe()}: {text}", file=self.log, flush=True
        )

    def skip(self, index: int, done: Path, why: str = "already done") -> None:
        self.outcomes[index] = Outcome(self.spec.runs[index], "skipped", done, 0.0, why)
        self.say(index, f"{why} ({done.name})")

    def admit(self) -> None:
        """Start the runs at the head of the queue while the backend admits them."""
        while self.queue and not self.stopping:
            index, run = self.queue[0]
            done = self.index.done(run)
            if done is not None:
                self.queue.popleft()
                self.skip(index, done)
                continue
            if not self.backend.admits(run):
                return
            self.queue.popleft()
            claim = claims.take(self.results_dir, run)
            if claim is None:
                self.deferred.append((index, run))
                continue
            done = self.index.done(run, refresh=True)  # finished by another sweep since we looked
            if done is not None:
                claim.release()
                self.skip(index, done, "done by another sweep")
                continue
            self.backend.submit(index, run, claim)
            self.running.add(index)
            self.manifest()

    def collect(self, ended: list[launch.Finished]) -> None:
        """Record the runs that ended: outcome, claim note, progress line, manifest."""
        for item in ended:
            self.running.discard(item.index)
            outcome = _outcome(item.run, item.result, item.seconds)
            item.claim.release(outcome.run_dir.name if outcome.run_dir else None, outcome.status)
            self.outcomes[item.index] = outcome
            if outcome.status in FINISHED:
                self.eta.record(item.run, item.seconds)
            left = [run for _, run in self.queue] + [run for _, run in self.deferred]
            self.say(
                item.index,
                f"{outcome.status} in {item.seconds:.1f} s{outcome.message and ' (' + outcome.message + ')'}; "
                f"sweep {format_duration(time.monotonic() - self.started)} so far, "
                f"{self.eta.describe(left, self.backend.slots)}",
            )
            if item.result.returncode in STOPS_THE_SWEEP:
                self.stopping = True  # a bad spec entry or Ctrl-C: start nothing more
        if ended:
            self.manifest()

    def take_up_deferred(self) -> bool:
        """Runs left to another sweep whose claim is free again: adopt its outcome, or queue them; False if none is."""
        still: list[tuple[int, PlannedRun]] = []
        for index, run in self.deferred:
            claim = claims.take(self.results_dir, run)
            if claim is None:
                still.append((index, run))
                continue
            done, note = self.index.done(run, refresh=True), claim.note()
            claim.release()
            if done is not None:
                self.skip(index, done, "done by another sweep")
            elif note and note.get("at", 0) >= self.wall_start and note.get("status") != "interrupted":
                run_dir = self.results_dir / note["run_dir"] if note.get("run_dir") else None
                message = "performed by another sweep"
                self.outcomes[index] = Outcome(run, str(note.get("status")), run_dir, 0.0, message)
                self.say(index, f"{note.get('status')} ({message})")
            else:
                self.queue.append((index, run))  # its sweep ended without it: perform it here
        progressed = len(still) < len(self.deferred)
        self.deferred = still
        return progressed

    def loop(self) -> None:
        self.manifest()
        while True:
            self.admit()
            if self.backend.busy():
                self.collect(self.backend.finished(POLL_S))
            elif self.queue and not self.stopping:
                time.sleep(POLL_S)  # not admitted with nothing in flight: only a backend still starting does that
            elif self.deferred and not self.stopping:
                if not self.take_up_deferred():
                    time.sleep(POLL_S)
            else:
                return


def run_sweep(
    spec: Spec,
    results_dir: Path,
    log: TextIO = sys.stderr,
    runner: launch.Runner = launch.run_subprocess,
    backend: launch.Backend | None = None,
) -> list[Outcome]:
    """Perform the spec's runs that are not done yet (one at a time unless ``backend`` says otherwise)."""
    if backend is None:
        backend = LocalPool(spec.name, results_dir, 1, default_budget(), runner, strict=False)
    try:
        backend.check(spec.runs)  # a run that could never start: refused before anything is written
    except BaseException:
        backend.close()
        raise
    results_dir.mkdir(parents=True, exist_ok=True)
    sweep = _Sweep(spec, results_dir, log, backend)
    try:
        sweep.loop()
    except KeyboardInterrupt:
        sweep.stopping = True
        sweep.collect(backend.stop())
        raise
    finally:
        backend.close()
        sweep.manifest()
    return [outcome for outcome in sweep.outcomes if outcome is not None]


def _outcome(run: PlannedRun, result: subprocess.CompletedProcess[str], seconds: float) -> Outcome:
    """Read a finished ``harness run``: its run directory (the last line it printed) and status."""
    run_dir = launch.printed_run_dir(result.stdout)
    status, message = "error", ""
    if run_dir is not None:
        status = str((read_meta(run_dir) or {}).get("status", "error"))
    if result.returncode not in RECORDED:
        tail = result.stderr.strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
        message = tail[0]
    return Outcome(run, status, run_dir, seconds, message)
