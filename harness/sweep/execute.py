"""Sweeps: a spec's planned runs, run one after another, resumable, with progress, ETA and a manifest.

Each run is ``python -m harness run ... --quiet --results DIR`` in a subprocess, so it
gets its own worker exactly as a user's ``run`` does.  A run is not repeated when
the results directory already holds a finished run (``completed``, or stopped by the
``memory_cap``: the expected end of a leak run) with the same variant, leak, seed,
epochs, model and tracing.

The spec format and its parsing live in :mod:`harness.sweep.spec`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from harness.formatting import format_duration
from harness.records import EXIT_CODES, FINISHED, INTERRUPTED, USAGE_EXIT_CODE
from harness.storage import META, find_runs, read_meta
from harness.sweep.spec import PlannedRun, Spec

STOP_GRACE_S = 30.0
# Exit codes of `harness run` that end the whole sweep: the spec asked for something impossible,
# or the user pressed Ctrl-C.
STOPS_THE_SWEEP = (USAGE_EXIT_CODE, EXIT_CODES[INTERRUPTED])
# Exit codes of a run that recorded what it was asked to (a leak run may end at its memory cap).
RECORDED = tuple(EXIT_CODES[status] for status in FINISHED)


def finished_runs(results_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(run directory, meta) of every finished run under ``results_dir``; unreadable ones are left out."""
    found = []
    for path in find_runs(results_dir):
        meta = read_meta(path)
        if meta is not None and meta.get("status") in FINISHED:
            found.append((path, meta))
    return found


def already_done(run: PlannedRun, finished: list[tuple[Path, dict[str, Any]]]) -> Path | None:
    """The directory of a finished run with ``run``'s parameters, if there is one."""
    return next((path for path, meta in finished if run.matches(meta)), None)


@dataclass
class Outcome:
    """What happened to one planned run in this sweep."""

    run: PlannedRun
    status: str  # a run status, "skipped" (already done) or "error"
    run_dir: Path | None
    seconds: float
    message: str = ""


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

    def describe(self, runs: list[PlannedRun]) -> str:
        """``"ETA 1:05"``, or ``"ETA 1:05 + lists, torch (not timed yet)"``."""
        seconds, unknown = self.remaining(runs)
        if not unknown:
            return f"ETA {format_duration(seconds)}"
        return f"ETA {format_duration(seconds)} + {', '.join(unknown)} (not timed yet)"


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run_subprocess(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run one ``harness run`` and capture what it prints; on Ctrl-C let it record its run as interrupted."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            stdout, stderr = process.communicate()
        except KeyboardInterrupt:
            # SIGTERM makes `run` stop its worker and mark the run interrupted; killing it outright
            # could leave its worker behind.  Only if it does not end in time is it killed.
            process.terminate()
            try:
                process.communicate(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
            raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def run_sweep(
    spec: Spec,
    results_dir: Path,
    log: TextIO = sys.stderr,
    runner: Runner = _run_subprocess,
) -> list[Outcome]:
    """Perform the spec's runs that are not done yet, one after another, reporting progress to ``log``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    finished = finished_runs(results_dir)
    total, eta, started = len(spec.runs), Eta(), time.monotonic()
    outcomes: list[Outcome] = []
    for index, run in enumerate(spec.runs, start=1):
        prefix = f"[{index}/{total}] {run.describe()}"
        done = already_done(run, finished)
        if done is not None:
            outcomes.append(Outcome(run, "skipped", done, 0.0, "already done"))
            print(f"{prefix}: already done ({done.name})", file=log, flush=True)
            continue
        begin = time.monotonic()
        try:
            result = runner(run.argv(results_dir))
        except KeyboardInterrupt:
            write_manifest(spec, results_dir, outcomes)
            raise
        seconds = time.monotonic() - begin
        outcome = _outcome(run, result, seconds)
        outcomes.append(outcome)
        if outcome.status in FINISHED:
            eta.record(run, seconds)
        print(
            f"{prefix}: {outcome.status} in {seconds:.1f} s{outcome.message and ' (' + outcome.message + ')'}; "
            f"sweep {format_duration(time.monotonic() - started)} so far, {eta.describe(list(spec.runs[index:]))}",
            file=log,
            flush=True,
        )
        if result.returncode in STOPS_THE_SWEEP:
            break  # a bad spec entry or Ctrl-C: stop here; what finished stays and is not repeated
    write_manifest(spec, results_dir, outcomes)
    return outcomes


def _outcome(run: PlannedRun, result: subprocess.CompletedProcess[str], seconds: float) -> Outcome:
    """Read a finished ``harness run``: its run directory (the last line it printed) and status."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    run_dir = Path(lines[-1].strip()) if lines else None
    if run_dir is None or not (run_dir / META).is_file():
        run_dir = next(
            (Path(w) for w in reversed(result.stdout.split()) if (Path(w) / META).is_file()),
            None,
        )
    status, message = "error", ""
    if run_dir is not None:
        status = str((read_meta(run_dir) or {}).get("status", "error"))
    if result.returncode not in RECORDED:
        tail = result.stderr.strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
        message = tail[0]
    return Outcome(run, status, run_dir, seconds, message)


def write_manifest(spec: Spec, results_dir: Path, outcomes: list[Outcome]) -> Path:
    """Record the sweep's runs and their directories in ``results_dir/sweep-<name>.json``."""
    path = results_dir / f"sweep-{spec.name}.json"
    entries = [
        asdict(o.run)
        | {
            "status": o.status,
            "run_dir": o.run_dir.name if o.run_dir else None,
            "message": o.message,
        }
        for o in outcomes
    ]
    data = {
        "name": spec.name,
        "description": spec.description,
        "planned": len(spec.runs),
        "runs": entries,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def sweep_run_dirs(outcomes: list[Outcome]) -> list[Path]:
    """The run directories the sweep produced or found done, in spec order."""
    return [o.run_dir for o in outcomes if o.run_dir is not None]
