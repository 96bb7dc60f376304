"""What a sweep knows of its results directory: the finished runs in it, and its manifest ``sweep-<name>.json``.

A run counts as done when the results directory holds a finished run
(``completed``, or stopped by the ``memory_cap``: the expected end of a leak
run) with the same parameters (:meth:`PlannedRun.matches`).  The manifest
lists every planned run with its status and run directory; it is written
whole under a temporary name of its own and renamed into place when the sweep
starts, after each run and at the end, so it is there after any ending and two
sweeps writing it never meet half-way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.jsonfile import write_json_atomic
from harness.records import FINISHED
from harness.storage import find_runs, read_meta
from harness.sweep.planned import PlannedRun

PENDING = "pending"  # in the manifest: planned, not performed (yet)


@dataclass
class Outcome:
    """What happened to one planned run in this sweep."""

    run: PlannedRun
    status: str  # a run status, "skipped" (already done) or "error"
    run_dir: Path | None
    seconds: float
    message: str = ""


class FinishedIndex:
    """The finished runs of a results directory, read again (only what may have changed) on :meth:`refresh`."""

    def __init__(self, results_dir: Path) -> None:
        self.results_dir = results_dir
        self._finished: dict[Path, dict[str, Any]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the run directories not known to be finished: new ones, and those still going when last read."""
        for path in find_runs(self.results_dir):
            if path not in self._finished:
                meta = read_meta(path)
                if meta is not None and meta.get("status") in FINISHED:
                    self._finished[path] = meta

    def done(self, run: PlannedRun, refresh: bool = False) -> Path | None:
        """The directory of a finished run with ``run``'s parameters, if there is one."""
        if refresh:
            self.refresh()
        return already_done(run, list(self._finished.items()))


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


def write_manifest(
    spec: Any, results_dir: Path, outcomes: Sequence[Outcome | None], running: Sequence[int] = ()
) -> Path:
    """Record every planned run of ``spec``, its status and directory, in ``results_dir/sweep-<name>.json``."""
    path = results_dir / f"sweep-{spec.name}.json"
    entries = []
    for index, run in enumerate(spec.runs):
        outcome = outcomes[index] if index < len(outcomes) else None
        status = outcome.status if outcome else ("running" if index in running else PENDING)
        entries.append(
            asdict(run)
            | {
                "status": status,
                "run_dir": outcome.run_dir.name if outcome and outcome.run_dir else None,
                "message": outcome.message if outcome else "",
            }
        )
    data = {"name": spec.name, "description": spec.description, "planned": len(spec.runs), "runs": entries}
    write_json_atomic(path, data)
    return path


def sweep_run_dirs(outcomes: Sequence[Outcome]) -> list[Path]:
    """The run directories the sweep produced or found done, in spec order."""
    return [o.run_dir for o in outcomes if o.run_dir is not None]
