"""Record one run: check the loop, make its run directory, supervise its worker, write the final meta.json.

The parent never imports or runs training code.  It

1. asks a short-lived worker to resolve the variant and the leak
   (:mod:`harness.recording.check`), so bad input is refused before anything
   is written;
2. makes the run directory and writes meta.json (status ``running``);
3. starts the worker and supervises it (:mod:`harness.recording.supervise`): records
   go to epochs.csv as they arrive, RSS samples to samples.csv; over the
   memory cap the worker is killed at once, on timeout, SIGINT or SIGTERM it
   is stopped with SIGTERM, then SIGKILL after a grace period;
4. rewrites meta.json atomically with the status, and the growth verdict
   (:mod:`~harness.recording.outcome` words how it ended).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import records, storage, sysinfo
from harness.errors import UsageError
from harness.formatting import format_size
from harness.growth import summarise_run
from harness.recording.check import check_script_runs, check_variant
from harness.recording.progress import Progress
from harness.recording.request import RunOutcome, RunRequest, default_memory_cap, memory_limit_for
from harness.recording.signals import SignalFlag
from harness.recording.supervise import Session

STDERR_TAIL_LINES = 20


def stderr_tail(log_path: Path, lines: int = STDERR_TAIL_LINES) -> list[str]:
    """The last lines of the worker's log (its stdout and stderr)."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return text.rstrip("\n").splitlines()[-lines:] if text.strip() else []


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "the worker did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (by the kernel's out-of-memory killer?)" if -code == signal.SIGKILL else ""
        return f"the worker was killed by {name}{hint}"
    return f"the worker exited with status {code}"


def _final_status(session: Session, exit_code: int | None, planned: int | None, limit: int) -> tuple[str, str]:
    """The run's status and a one-line message, from what the parent decided and what the worker said."""
    if session.status is not None:
        return session.status, session.message
    if session.error is not None:
        exception = session.error.get("exception", "")
        if session.error.get("memory_error"):
            return records.MEMORY_CAP, (
                f"an allocation failed under the worker's allocation limit of {format_size(limit)} "
                f"(RLIMIT_DATA backstop) before a sample saw RSS over the cap: {exception}"
            )
        return records.FAILED, f"{session.error.get('phase', 'training')}: {exception}"
    # A loop completes its planned epochs; a script (planned None) completes when it exits with status 0.
    if exit_code == 0 and session.done is not None and planned in (None, session.last_epoch):
        return records.COMPLETED, ""
    if (session.done or {}).get("exit_status"):
        return records.FAILED, f"the script exited with status {session.done['exit_status']}"
    return records.FAILED, _describe_exit(exit_code)


def execute(
    request: RunRequest,
    *,
    progress: Progress | None = None,
    on_start: Callable[[Path], None] | None = None,
    handle_signals: bool = True,
) -> RunOutcome:
    """Check the variant, record one run into a new run directory, and judge its growth.

    UsageError before anything is written when the request cannot run;
    KeyboardInterrupt when SIGINT/SIGTERM came before the run directory existed.
    ``on_start`` is called with the run directory once its first meta.json is written.  With
    ``handle_signals`` (and in the main thread) SIGINT and SIGTERM stop the run
    as ``interrupted`` instead of raising; the previous handlers are restored after.
    """
    flag = SignalFlag()
    if handle_signals:
        flag.install()
    try:
        storage.check_results_dir(request.results_dir)
        cap = request.memory_cap_bytes if request.memory_cap_bytes is not None else default_memory_cap()
        limit, interrupted = memory_limit_for(cap), lambda: flag.count > 0
        if request.script is not None:
            check_script_runs(request.script, memory_limit_bytes=limit, interrupted=interrupted)
        else:
            assert request.config is not None
            check_variant(
                request.variant,
                request.config.leak,
                memory_limit_bytes=limit,
                config=request.config,
                interrupted=interrupted,
                lines=request.lines,
            )
        if flag.count:
            raise KeyboardInterrupt  # nothing written yet: leave like any interrupted command
        if request.script is not None:
            run_dir = storage.create_run_dir(request.results_dir, request.script.stem, None, None)
        else:
            run_dir = storage.create_run_dir(
                request.results_dir, request.variant, request.config.leak, request.config.seed
            )
        outcome, analyse = _record(request, run_dir, cap, progress, flag, on_start)
    finally:
        flag.restore()
    return _with_growth(outcome) if analyse else outcome


def _record(
    request: RunRequest,
    run_dir: Path,
    cap: int,
    progress: Progress | None,
    flag: SignalFlag,
    on_start: Callable[[Path], None] | None,
) -> tuple[RunOutcome, bool]:
    """Run the worker into ``run_dir``; meta.json ends with a final status even if the parent fails.

    Returns the outcome (without its growth) and whether its epochs can be analysed.
    """
    limit = memory_limit_for(cap)
    config, script = request.config, request.script
    host = sysinfo.host_info()
    meta = records.RunMeta(
        run_id=run_dir.name,
        variant=request.variant,
        leak=config.leak if config is not None else None,
        seed=config.seed if config is not None else None,
        epochs_planned=config.epochs if config is not None else None,
        epochs_done=0,
        status=records.RUNNING,
        config=config.to_dict() if config is not None else {},
        memory_cap_bytes=cap,
        memory_limit_bytes=limit,
        timeout_s=request.timeout_s,
        trace=request.trace,
        sample_interval_s=request.sample_interval_s,
        measure=request.measure,
        script=script.to_dict() if script is not None else None,
        epochs_from=request.epochs_from,
        window_s=request.window_or_default,
        gc={"policy": request.gc_collect},
        started_at=storage.iso(storage.utc_now()),
        ended_at=None,
        host=host,
        versions=sysinfo.versions(),
        git_commit=sysinfo.git_commit(),
    ).to_dict()
    try:
        storage.write_meta(run_dir, meta)
    except OSError as exc:  # a full disk at the start: leave nothing behind, say why in one line
        shutil.rmtree(run_dir, ignore_errors=True)
        raise UsageError(f"cannot write in {request.results_dir}: {exc.strerror or exc}") from None
    if on_start is not None:
        on_start(run_dir)

    job = {
        "trace_path": str((run_dir / storage.TRACE).absolute()) if request.trace else None,
        "trace_frames": request.trace_frames,
        "gc_collect": request.gc_collect,
        "memory_limit_bytes": limit,
        "lines_path": str((run_dir / storage.LINES).absolute()) if request.lines is not None else None,
        "lines": list(request.lines or ()),
    }
    if script is not None:
        job |= {"script": script.to_dict(), "marks": request.window_s is None, "window_s": request.window_or_default}
    else:
        job |= {"variant": request.variant, "config": config.to_dict() if config is not None else None}
    session = Session(request, cap, run_dir, progress, flag)
    exit_code: int | None = None
    try:
        exit_code = session.run(job)
        status, message = _final_status(session, exit_code, meta["epochs_planned"], limit)
    except BaseException as exc:
        # A bug in the parent (or a signal outside our handlers): still leave a finished run behind.
        status, message = records.FAILED, f"the recording process failed: {type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            _finish(run_dir, meta, session, status, message, exit_code)
        raise
    finally:
        session.close()
        if progress is not None:
            progress.close()
    if session.writer.failure is not None and status != records.FAILED:
        status, message = records.FAILED, storage.cannot_record(run_dir, session.writer.failure)
    try:
        stop = _finish(run_dir, meta, session, status, message, exit_code)
    except OSError as exc:  # the final meta.json cannot be written either: the outcome still says why
        status, message = records.FAILED, storage.cannot_record(run_dir, session.writer.failure or exc)
        stop = {"reason": status, "epoch": session.last_epoch, "message": message}
        return RunOutcome(run_dir, status, records.EXIT_CODES[status], session.last_epoch, stop, None, meta), False
    # A script that marked no epoch is judged on windows of its samples: analysed whatever last_epoch says.
    has_epochs = session.last_epoch >= 1 or meta["epochs_from"] == records.WINDOWS
    analyse = has_epochs and session.writer.failure is None
    outcome = RunOutcome(run_dir, status, records.EXIT_CODES[status], session.last_epoch, stop, None, meta)
    return outcome, analyse


def _with_growth(outcome: RunOutcome) -> RunOutcome:
    """The outcome with the run's growth verdict, stored in meta.json (a note on stderr when it cannot be).

    Runs after the recorder's signal handlers are gone: reading a long run back
    takes seconds, and Ctrl-C must still end the command (the run's status is
    already safe on disk; only the verdict is not stored then).
    """
    run = storage.load_run(outcome.run_dir)
    if run.epochs.empty:
        return outcome  # a script's run shorter than one window
    meta = outcome.meta | {"epochs_done": run.meta["epochs_done"]}  # a script's windows count as its epochs
    try:
        growth = summarise_run(run.epochs, meta)
    except UsageError:  # --measure heap on a script that marked no epochs: nothing to judge it on
        growth = None
    meta["growth"] = growth
    try:
        storage.write_meta(outcome.run_dir, meta)
    except OSError as exc:
        print(f"note: growth not stored in {outcome.run_dir}: {exc.strerror or exc}", file=sys.stderr)
    return replace(outcome, epochs_done=meta["epochs_done"], growth=growth, meta=meta)


def _finish(
    run_dir: Path, meta: dict[str, Any], session: Session, status: str, message: str, exit_code: int | None
) -> dict[str, Any] | None:
    """Write the final meta.json (status, stop, end time); returns the stop dict."""
    stop = None
    if status != records.COMPLETED:
        stop = records.StopInfo(
            reason=status,
            epoch=session.last_epoch,
            exit_code=exit_code,
            stderr_tail=tuple(stderr_tail(run_dir / storage.WORKER_LOG)),
            message=message,
            **session.stop_info(),
        ).to_dict()
    if meta["epochs_from"] == records.MARKS and session.last_epoch == 0:
        meta["epochs_from"] = records.WINDOWS  # the script marked no epoch: it is judged per window of samples
    meta |= {
        "epochs_done": session.last_epoch,
        "status": status,
        "ended_at": storage.iso(storage.utc_now()),
        "versions": meta["versions"] | session.worker_versions,
        "process_tree": session.tree.summary() if session.tree is not None else None,
        "gc": {"policy": meta["gc"]["policy"], **((session.done or {}).get("gc") or {})},
        "stop": stop,
    }
    records.RunMeta.from_dict(meta)
    storage.write_meta(run_dir, meta)  # the status is safe on disk before any analysis runs
    return stop
