"""One running worker, supervised: read its records, sample its memory, stop it safely.

The worker runs in a session of its own (so a terminal's Ctrl-C reaches only
the parent, which then decides), with stdout and stderr in worker.log and the
records on a pipe of their own (``pass_fds``).  The parent polls that pipe with
a timeout equal to the time left until the next memory sample: each record is
appended to epochs.csv and flushed as soon as it is read (fsync'ed at most
every 0.5 s); each sample (psutil RSS of the worker) goes to samples.csv and is
checked against the memory cap, over which the worker is killed at once
(SIGKILL).  On timeout, SIGINT or SIGTERM the worker gets SIGTERM (it finishes
bookkeeping and writes a final trace) and SIGKILL after :data:`GRACE_S`.
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from harness import records, storage
from harness.recording.progress import Progress
from harness.recording.request import RunRequest
from harness.worker import protocol
from harness.worker.protocol import worker_command

READ_BATCH_S = 0.01  # records wait at most this long before they are written
GRACE_S = 5.0  # a stopped worker gets this long to write its last records and trace before SIGKILL


class SignalFlag:
    """SIGINT/SIGTERM in the parent: remember them; the poll loop acts within one sample interval."""

    def __init__(self) -> None:
        self.count = 0
        self.name = ""
        self._previous: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any) -> None:
        """The signal handler: count the signal and remember its name."""
        self.count += 1
        self.name = signal.Signals(signum).name

    def install(self) -> None:
        """Handle SIGINT and SIGTERM here until :meth:`restore`."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; the embedding program keeps its own
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self.handler)

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


class Session:
    """One running worker and the files it is recorded into."""

    def __init__(
        self, request: RunRequest, cap: int, run_dir: Path, progress: Progress | None, flag: SignalFlag
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
    def _handle(self, kind: str, message: dict[str, Any]) -> None:
        if kind == protocol.EPOCH:
            record = records.EpochRecord.from_dict(message)
            self.writer.epoch(record)
            self.last_epoch = record.epoch
            if self.progress is not None:
                self.progress.epoch(record)
            if record.rss_bytes > self.cap:
                self._over_cap(record.rss_bytes)
        elif kind == protocol.STARTED:
            self.t0 = float(message["t0"])
            self.worker_versions = dict(message.get("versions") or {})
            self._flush_pending()
        elif kind == protocol.ERROR:
            self.error = message
        elif kind == protocol.DONE:
            self.done = message
        else:
            raise ValueError(f"unexpected message {kind!r} from a training worker")

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
                self._handle(*protocol.decode(line))
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
                    worker_command(write_fd, "--job", job),
                    pass_fds=(write_fd,),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
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
        """Close the run's files."""
        self.writer.close()
