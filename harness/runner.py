"""The parent side of a run: start the worker, record what it sends, watch its memory, stop it safely.

The parent never imports or runs training code.  It

1. asks a short-lived worker to resolve the variant and the leak
   (``python -m harness.worker --check``), so bad input is refused before
   anything is written;
2. makes the run directory and writes meta.json (status ``running``);
3. starts the worker in a session of its own (so a terminal's Ctrl-C reaches only
   the parent, which then decides), with stdout and stderr in worker.log and
   the records on a pipe of their own (``pass_fds``);
4. polls that pipe with a timeout equal to the time left until the next
   memory sample: each record is appended to epochs.csv and flushed as soon
   as it is read (fsync'ed at most every 0.5 s); each sample (psutil RSS of the worker) goes to samples.csv
   and is checked against the memory cap, over which the worker is killed at
   once (SIGKILL);
5. on timeout, SIGINT or SIGTERM sends the worker SIGTERM (it finishes
   bookkeeping and writes a final trace) and SIGKILL after :data:`GRACE_S`;
6. rewrites meta.json atomically with the status, and the growth verdict.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness import records, storage, sysinfo, tracing
from harness.errors import UsageError
from harness.growth import format_growth, summarise_growth
from harness.interface import RunConfig
from harness.progress import Progress
from harness.sizes import format_size

DEFAULT_SAMPLE_INTERVAL_S = 0.05
MAX_DEFAULT_CAP = 4 * 1024**3
READ_BATCH_S = 0.01  # records wait at most this long before they are written
GRACE_S = 5.0  # a stopped worker gets this long to write its last records and trace before SIGKILL
CHECK_TIMEOUT_S = 120.0  # resolving a variant imports it: torch alone takes seconds
STDERR_TAIL_LINES = 20


def default_memory_cap() -> int:
    """The smaller of 4 GiB and half of the memory available now."""
    return min(MAX_DEFAULT_CAP, psutil.virtual_memory().available // 2)


def memory_limit_for(cap: int) -> int:
    """The worker's RLIMIT_DATA backstop for a cap: twice the cap plus 1 GiB (see harness.worker)."""
    return 2 * cap + 1024**3


@dataclass(frozen=True)
class RunRequest:
    """Everything ``run`` needs; checks its fields (UsageError) before anything starts."""

    variant: str
    config: RunConfig
    results_dir: Path = Path("results")
    memory_cap_bytes: int | None = None  # None: default_memory_cap() when the run starts
    timeout_s: float | None = None
    sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S
    trace: bool = False
    trace_frames: int = tracing.FRAMES

    def __post_init__(self) -> None:
        if not isinstance(self.variant, str) or not self.variant:
            raise UsageError("a variant is required: --variant NAME")
        if not isinstance(self.config, RunConfig):
            raise UsageError(f"config must be a RunConfig, got {type(self.config).__name__}")
        cap = self.memory_cap_bytes
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0):
            raise UsageError(f"memory cap must be a positive size, got {cap!r}")
        if self.timeout_s is not None and not (isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0):
            raise UsageError(f"timeout must be a positive number of seconds, got {self.timeout_s!r}")
        interval = self.sample_interval_s
        if not isinstance(interval, (int, float)) or not math.isfinite(interval) or not 0.001 <= interval <= 60:
            raise UsageError(f"sample interval must be between 0.001 and 60 seconds, got {interval!r}")
        frames = self.trace_frames
        if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= tracing.MAX_FRAMES:
            raise UsageError(f"trace frames must be a whole number from 1 to {tracing.MAX_FRAMES}, got {frames!r}")
        object.__setattr__(self, "results_dir", Path(self.results_dir))


@dataclass(frozen=True)
class VariantCheck:
    """What the check worker found: the class's description and leaks."""

    description: str
    leaks: dict[str, str]


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended; ``meta`` is the final meta.json."""

    run_dir: Path
    status: str
    exit_code: int
    epochs_done: int
    stop: dict[str, Any] | None
    growth: dict[str, Any] | None
    meta: dict[str, Any] = field(repr=False)


def _worker_command(fd: int, mode: str, payload: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "harness.worker", "--fd", str(fd), mode, json.dumps(payload)]


def check_variant(
    variant: str,
    leak: str | None,
    timeout_s: float = CHECK_TIMEOUT_S,
    memory_limit_bytes: int | None = None,
) -> VariantCheck:
    """Resolve the variant and leak in a throw-away worker; UsageError naming what is wrong.

    Importing runs the module's top-level code: the check gets the run's RLIMIT_DATA
    backstop (default: that of the default cap) and ``timeout_s``.
    """
    limit = memory_limit_bytes if memory_limit_bytes is not None else memory_limit_for(default_memory_cap())
    payload = {"variant": variant, "leak": leak, "parent_pid": os.getpid(), "memory_limit_bytes": limit}
    read_fd, write_fd = os.pipe()
    try:
        command = _worker_command(write_fd, "--check", payload)
        try:
            # A session of its own: a terminal's Ctrl-C reaches only the parent, which decides.
            done = subprocess.run(
                command, pass_fds=(write_fd,), stdin=subprocess.DEVNULL, capture_output=True,
                text=True, timeout=timeout_s, check=False, start_new_session=True,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise UsageError(f"loading variant {variant!r} took longer than {timeout_s:.0f} s") from None
        os.close(write_fd)
        write_fd = -1
        with os.fdopen(read_fd, "rb") as pipe:
            read_fd = -1
            lines = pipe.read().decode(errors="replace").splitlines()
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    verdict = next((json.loads(line) for line in reversed(lines) if line.startswith('{"type": "check"')), None)
    if verdict is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"cannot load variant {variant!r}: the check exited with status {done.returncode}: {tail}")
    if not verdict["ok"]:
        raise UsageError(verdict["message"])
    return VariantCheck(verdict["description"], dict(verdict["leaks"]))


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


class _SignalFlag:
    """SIGINT/SIGTERM in the parent: remember them; the poll loop acts within one sample interval."""

    def __init__(self) -> None:
        self.count = 0
        self.name = ""
        self._previous: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.name = signal.Signals(signum).name

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; the embedding program keeps its own
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self.handler)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


class _Session:
    """One running worker and the files it is recorded into."""

    def __init__(
        self, request: RunRequest, cap: int, run_dir: Path, progress: Progress | None, flag: _SignalFlag
    ) -> None:
        self.request = request
        self.cap = cap
        self.run_dir = run_dir
        self.progress = progress
        self.writer = storage.RunWriter(run_dir)
        self.flag = flag
        self.status: str | None = None  # set when the parent decides to end the run
        self.message = ""
        self.last_epoch = 0
        self.last_rss: int | None = None
        self.cap_rss: int | None = None
        self.t0: float | None = None
        self.spawned_at = 0.0
        self.pending_samples: list[tuple[float, int, int]] = []
        self.error: dict[str, Any] | None = None
        self.done: dict[str, Any] | None = None
        self.worker_versions: dict[str, str] = {}
        self.term_sent_at: float | None = None
        self.killed = False
        self.proc: subprocess.Popen[bytes] | None = None

    # -- the worker's messages -------------------------------------------------------------
    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.pop("type", None)
        if kind == "epoch":
            record = records.EpochRecord.from_dict(message)
            self.writer.epoch(record)
            self.last_epoch = record.epoch
            if self.progress is not None:
                self.progress.epoch(record)
            if record.rss_bytes > self.cap:
                self._over_cap(record.rss_bytes)
        elif kind == "started":
            self.t0 = float(message["t0"])
            self.worker_versions = dict(message.get("versions") or {})
            self._flush_pending()
        elif kind == "error":
            self.error = message
        elif kind == "done":
            self.done = message
        else:
            raise ValueError(f"unknown message type {kind!r}")

    def _read(self, fd: int, buffer: bytearray) -> bool:
        """Read what the pipe holds; handle whole lines; False at end of file."""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return False
        buffer.extend(chunk)
        end = buffer.rfind(b"\n")
        if end < 0:
            return True
        lines, buffer[:] = bytes(buffer[: end + 1]), buffer[end + 1 :]
        for line in lines.splitlines():
            try:
                self._handle(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                # Only our own worker writes here: a bad record is a harness bug, not the user's.
                self._end(records.FAILED, f"bad record from the worker ({exc}): {line[:200]!r}", kill=True)
        self.writer.sync_epochs()
        return True

    # -- memory samples --------------------------------------------------------------------
    def _flush_pending(self) -> None:
        origin = self.t0 if self.t0 is not None else self.spawned_at
        samples = [records.Sample(t - origin, rss, epoch) for t, rss, epoch in self.pending_samples]
        self.pending_samples.clear()
        self.writer.samples(samples)

    def _sample(self, process: psutil.Process) -> None:
        try:
            rss = process.memory_info().rss
        except psutil.Error:  # exited: nothing left to measure
            return
        if rss == 0:
            return  # a zombie that has released its memory: not a measurement of the run
        now = time.monotonic()
        self.last_rss = rss
        # The epoch in progress; 0 while the worker starts up and builds the loop.
        epoch = self.last_epoch + 1 if self.t0 is not None else 0
        if self.t0 is None:
            self.pending_samples.append((now, rss, epoch))
        else:
            sample = records.Sample(now - self.t0, rss, epoch)
            self.writer.samples([sample])
            if self.progress is not None:
                self.progress.sample(sample)
        if rss > self.cap:
            self._over_cap(rss)

    def _over_cap(self, rss: int) -> None:
        if self.status is None or self.status in (records.TIMEOUT, records.INTERRUPTED):
            self.cap_rss = rss
            self._end(records.MEMORY_CAP, "", kill=True)

    # -- ending ----------------------------------------------------------------------------
    def _end(self, status: str, message: str, *, kill: bool) -> None:
        if self.status is None or status == records.MEMORY_CAP:
            self.status, self.message = status, message
        if kill:
            self._kill()
        elif self.term_sent_at is None:
            self.term_sent_at = time.monotonic()
            self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signum)

    def _kill(self) -> None:
        """SIGKILL the worker's whole process group: processes the training code started go too."""
        if self.killed or self.proc is None:
            return
        self.killed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker leads its own session and group
        except (ProcessLookupError, PermissionError):
            self._signal(signal.SIGKILL)

    def _check_limits(self, now: float, deadline: float | None) -> None:
        if self.flag.count and self.status is None:
            self._end(records.INTERRUPTED, f"stopped by {self.flag.name}", kill=False)
        elif self.flag.count > 1:
            self._kill()  # a second Ctrl-C: stop waiting
        if deadline is not None and now >= deadline and self.status is None:
            self._end(records.TIMEOUT, f"timed out after {self.request.timeout_s:g} s", kill=False)
        if self.term_sent_at is not None and now - self.term_sent_at > GRACE_S:
            self._kill()

    # -- the loop ----------------------------------------------------------------------------
    def run(self, job: dict[str, Any]) -> int | None:
        """Run the worker to its end; returns its exit status (negative: killed by that signal)."""
        read_fd, write_fd = os.pipe()
        job = job | {"parent_pid": os.getpid()}
        try:
            with open(self.run_dir / storage.WORKER_LOG, "ab") as log:
                self.spawned_at = time.monotonic()
                self.proc = subprocess.Popen(
                    _worker_command(write_fd, "--job", job),
                    pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True,
                )  # fmt: skip
            os.close(write_fd)
            process = psutil.Process(self.proc.pid)
            self._poll_loop(read_fd, process)
            return self._reap()
        finally:
            os.close(read_fd)
            if self.proc is not None and self.proc.poll() is None:
                self._kill()
                self.proc.wait()

    def _poll_loop(self, read_fd: int, process: psutil.Process) -> None:
        interval = self.request.sample_interval_s
        deadline = self.spawned_at + self.request.timeout_s if self.request.timeout_s else None
        poller = select.poll()
        poller.register(read_fd, select.POLLIN | select.POLLHUP)
        buffer = bytearray()
        next_sample = time.monotonic()
        read_after = 0.0
        while True:
            now = time.monotonic()
            wait = max(0.0, next_sample - now)
            if deadline is not None and self.status is None:
                wait = min(wait, max(0.0, deadline - now))
            if poller.poll(math.ceil(wait * 1000)):
                # A fast loop sends hundreds of records a second: let them gather for a few
                # milliseconds and handle them in one go, so this process does not steal the
                # worker's CPU by waking up for each one.
                if time.monotonic() < read_after:
                    time.sleep(max(0.0, min(read_after, next_sample) - time.monotonic()))
                if not self._read(read_fd, buffer):
                    break  # end of file: the worker has exited (or closed the pipe)
                read_after = time.monotonic() + READ_BATCH_S
            now = time.monotonic()
            if now >= next_sample:
                if not self.killed:
                    self._sample(process)
                # Keep to the grid, but do not fire a burst of samples after a stall.
                next_sample = max(next_sample + interval, now)
            self._check_limits(now, deadline)
        self._flush_pending()

    def _reap(self) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            self._kill()
            return self.proc.wait()

    def close(self) -> None:
        self.writer.close()


def _final_status(session: _Session, exit_code: int | None, planned: int, limit: int) -> tuple[str, str]:
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
    if exit_code == 0 and session.done is not None and session.last_epoch == planned:
        return records.COMPLETED, ""
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
    flag = _SignalFlag()
    if handle_signals:
        flag.install()
    try:
        storage.check_results_dir(request.results_dir)
        cap = request.memory_cap_bytes if request.memory_cap_bytes is not None else default_memory_cap()
        check_variant(request.variant, request.config.leak, memory_limit_bytes=memory_limit_for(cap))
        if flag.count:
            raise KeyboardInterrupt  # nothing written yet: leave like any interrupted command
        run_dir = storage.create_run_dir(request.results_dir, request.variant, request.config.leak, request.config.seed)
        return _record(request, run_dir, cap, progress, flag, on_start)
    finally:
        flag.restore()


def _record(
    request: RunRequest,
    run_dir: Path,
    cap: int,
    progress: Progress | None,
    flag: _SignalFlag,
    on_start: Callable[[Path], None] | None,
) -> RunOutcome:
    """Run the worker into ``run_dir``; meta.json ends with a final status even if the parent fails."""
    limit = memory_limit_for(cap)
    leak = request.config.leak
    host = sysinfo.host_info()
    meta = records.RunMeta(
        run_id=run_dir.name,
        variant=request.variant,
        leak=leak,
        seed=request.config.seed,
        epochs_planned=request.config.epochs,
        epochs_done=0,
        status=records.RUNNING,
        config=request.config.to_dict(),
        memory_cap_bytes=cap,
        memory_limit_bytes=limit,
        timeout_s=request.timeout_s,
        trace=request.trace,
        sample_interval_s=request.sample_interval_s,
        started_at=storage.iso(storage.utc_now()),
        ended_at=None,
        host=host,
        versions=sysinfo.versions(),
        git_commit=sysinfo.git_commit(),
    ).to_dict()
    storage.write_meta(run_dir, meta)
    if on_start is not None:
        on_start(run_dir)

    job = {
        "variant": request.variant,
        "config": request.config.to_dict(),
        "trace_path": str((run_dir / storage.TRACE).absolute()) if request.trace else None,
        "trace_frames": request.trace_frames,
        "memory_limit_bytes": limit,
    }
    session = _Session(request, cap, run_dir, progress, flag)
    exit_code: int | None = None
    try:
        exit_code = session.run(job)
        status, message = _final_status(session, exit_code, request.config.epochs, limit)
    except BaseException as exc:
        # A bug in the parent (or a signal outside our handlers): still leave a finished run behind.
        status, message = records.FAILED, f"the recording process failed: {type(exc).__name__}: {exc}"
        _finish(run_dir, meta, session, status, message, exit_code)
        raise
    finally:
        session.close()
        if progress is not None:
            progress.close()
    stop = _finish(run_dir, meta, session, status, message, exit_code)

    growth = None
    if session.last_epoch >= 1:
        run = storage.load_run(run_dir)
        growth = summarise_growth(run.epochs, cap, host["memory_total_bytes"])
        meta["growth"] = growth
        storage.write_meta(run_dir, meta)
    return RunOutcome(run_dir, status, records.EXIT_CODES[status], session.last_epoch, stop, growth, meta)


def _finish(
    run_dir: Path, meta: dict[str, Any], session: _Session, status: str, message: str, exit_code: int | None
) -> dict[str, Any] | None:
    """Write the final meta.json (status, stop, end time); returns the stop dict."""
    stop = None
    if status != records.COMPLETED:
        stop = records.StopInfo(
            reason=status,
            epoch=session.last_epoch,
            rss_bytes=session.cap_rss if session.cap_rss is not None else session.last_rss,
            exit_code=exit_code,
            stderr_tail=tuple(stderr_tail(run_dir / storage.WORKER_LOG)),
            message=message,
        ).to_dict()
    meta |= {
        "epochs_done": session.last_epoch,
        "status": status,
        "ended_at": storage.iso(storage.utc_now()),
        "versions": meta["versions"] | session.worker_versions,
        "stop": stop,
    }
    records.RunMeta.from_dict(meta)
    storage.write_meta(run_dir, meta)  # the status is safe on disk before any analysis runs
    return stop


def describe_outcome(outcome: RunOutcome) -> list[str]:
    """Lines summarising how a run ended, for the end of ``run``."""
    meta = outcome.meta
    planned = meta["epochs_planned"]
    lines = []
    if outcome.status == records.COMPLETED:
        lines.append(f"completed {outcome.epochs_done}/{planned} epochs")
    elif outcome.status == records.MEMORY_CAP:
        stop = outcome.stop or {}
        rss = stop.get("rss_bytes")
        detail = stop.get("message") or (
            f"RSS {format_size(rss)} passed the cap {format_size(meta['memory_cap_bytes'])}" if rss else ""
        )
        lines.append(f"memory_cap: stopped after epoch {outcome.epochs_done}/{planned}: {detail}")
    else:
        stop = outcome.stop or {}
        lines.append(f"{outcome.status}: after epoch {outcome.epochs_done}/{planned}: {stop.get('message', '')}")
    if outcome.growth is not None:
        lines.extend(format_growth(outcome.growth).splitlines())
    return lines
