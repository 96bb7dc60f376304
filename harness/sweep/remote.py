"""A sweep's run as a Dask task, in a Dask worker: recorded into a private temporary directory and sent back whole.

The task runs ``harness run`` with the worker's interpreter
(:func:`harness.sweep.launch.perform`: parent-death signal, a seat on the
worker's machine, the client's pinned environment) into a directory of its
own, returns the run directory's files, and removes the directory, so the
sweep's client alone writes its results directory.  The run is stopped
(SIGTERM: it records itself as interrupted) when the sweep asks (its stop
event) or when the task is cancelled, which the scheduler does when the client
goes away, even killed.  Loaded by the Dask workers: it imports Dask only
inside the task.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.sweep import launch
from harness.sweep.planned import PlannedRun

MIB = 1024**2
# The largest file of a run sent back: samples.csv grows about 1.5 MB per hour of run.
MAX_FILE_BYTES = 512 * MIB
# A task's directory: named after its Dask worker's pid, so one left by a worker that was killed is removed later.
TASK_PREFIX = "leakbench-task-"


def perform_remote(run: PlannedRun, placement: Mapping[str, Any], stop_event: str | None) -> dict[str, Any]:
    """Perform ``run`` in this Dask worker; its exit code, output, run id and files (name -> bytes)."""
    from distributed import get_worker

    worker = get_worker()
    resources = dict(worker.state.total_resources)
    fields = dict(placement) | {
        "slots": int(resources.get("slots", placement["slots"])),
        "budget_bytes": int(resources.get("MiB", placement["budget_bytes"] // MIB)) * MIB,
    }
    _remove_stale_task_dirs()
    tmp = Path(tempfile.mkdtemp(prefix=f"{TASK_PREFIX}{os.getpid()}-"))
    try:
        argv = run.argv(tmp, memory_cap=str(placement["cap_bytes"]))
        stopping = _stopping(worker, worker.get_current_task(), stop_event)
        result = launch.perform(argv, launch.Placement(**fields), stopping=stopping)
        run_dir = launch.printed_run_dir(result.stdout)
        files = {}
        if run_dir is not None:
            files = {
                path.name: path.read_bytes()
                for path in sorted(run_dir.iterdir())
                if path.is_file() and path.stat().st_size <= MAX_FILE_BYTES
            }
        return {
            "returncode": result.returncode,
            "stderr": result.stderr,
            "run_id": run_dir.name if run_dir is not None else None,
            "files": files,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stopping(worker: Any, key: Any, stop_event: str | None) -> Callable[[], bool]:
    """True once the sweep set its stop event or this task was cancelled (the client interrupted, or gone)."""
    from distributed import Event

    event = Event(stop_event) if stop_event else None

    def stopping() -> bool:
        task = worker.state.tasks.get(key)
        if task is None or task.state not in ("executing", "long-running"):
            return True
        try:
            return bool(event is not None and event.is_set())
        except Exception:  # noqa: BLE001 - the scheduler unreachable: keep running; cancellation still stops it
            return False

    return stopping


def _remove_stale_task_dirs() -> None:
    """Remove the task directories of Dask workers that are gone (killed mid-run: nothing cleaned up after them)."""
    for path in Path(tempfile.gettempdir()).glob(f"{TASK_PREFIX}*-*"):
        pid = path.name.removeprefix(TASK_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):
                shutil.rmtree(path)
