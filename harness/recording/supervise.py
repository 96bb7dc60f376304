"""One running worker, supervised: read its records, sample its process tree, stop it safely, leave nothing behind.

The worker runs in a session of its own (so a terminal's Ctrl-C reaches only
the parent, which then decides), with stdout and stderr in worker.log and the
records on a pipe of their own (``pass_fds``).  The process started is the
keeper (:mod:`harness.worker.keeper`), which forks the trainer; a lifeline pipe
whose write end only this process holds tells the keeper when the parent dies.

The parent polls the record pipe with a timeout equal to the time left until
the next sample: the records read are appended to epochs.csv (with the tree's
latest figures) and flushed as a batch (fsync'ed at most every 0.5 s); each
sample (:mod:`harness.recording.tree`) goes to samples.csv and is checked
against the memory cap, over which every process of the tree is killed at once.
On timeout, SIGINT or SIGTERM the keeper gets SIGTERM and passes it to the
trainer (which finishes bookkeeping and writes a final trace); after
:data:`GRACE_S` the tree is killed.  However the run ends, the keeper kills
what the training code left running; and after the keeper has gone, the
parent kills any process it ever saw in the tree that is somehow still alive.
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import records, storage
from harness.recording import ending
from harness.recording.progress import Progress
from harness.recording.request import RunRequest
from harness.recording.signals import SignalFlag
from harness.recording.tree import Reading, TreeSampler
from harness.worker import protocol

READ_BATCH_S = 0.05  # records wait this long at most: the parent's CPU costs the trainer (docs/SCHEMA.md)
GRACE_S = 5.0  # a stopped worker gets this long to write its last records and trace before SIGKILL


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
        self.last: Reading | None = None  # the latest reading that saw the worker
        self.cap_reading: Reading | None = None  # the highest reading over the cap
        self.t0: float | None = None
        self.spawned_at = 0.0
        self.next_sample = 0.0
        self.pending_samples: list[tuple[float, Reading, int]] = []
        self.error: dict[str, Any] | None = None
        self.done: dict[str, Any] | None = None
        self.worker_versions: dict[str, str] = {}
        self.term_sent_at: float | None = None
        self.killed = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.tree: TreeSampler | None = None

    # -- the worker's messages -------------------------------------------------------------
    def _handle(self, kind: str, message: dict[str, Any]) -> None:
        if kind == protocol.EPOCH:
            record = records.EpochRecord.from_dict(message, self._row_tree())
            self.writer.epoch(record)
            self._epoch_done(record.epoch, record.rss_bytes, record.elapsed_s, record.metrics)
        elif kind in (protocol.WORKER, protocol.STARTED):
            if self.tree is not None:
                self.tree.trainer = int(message["pid"])
            if kind == protocol.STARTED:
                self.t0 = float(message["t0"])
                self.worker_versions = dict(message.get("versions") or {})
                self._flush_pending()
        elif kind == protocol.TRACER and self.tree is not None:  # left out of the tree's figures and the cap
            self.tree.tracer(message.get("pid"), ended=bool(message.get("ended")))
        elif kind == protocol.ERROR:
            self.error = message
        elif kind == protocol.DONE:  # with a script's versions: what it imported by its end
            self.done, self.worker_versions = message, self.worker_versions | dict(message.get("versions") or {})
        else:
            raise ValueError(f"unexpected message {kind!r} from a training worker")

    def _frame(self, frame: protocol.EpochFrame, reader: protocol.MessageReader) -> None:
        """An epoch frame: its numbers (typed by the frame) go to the row as they are, not through a checked record."""
        names = reader.metric_names
        if names != self.writer.metric_names:  # never from our worker: take the checked path
            return self._handle(protocol.EPOCH, reader.fields(frame))
        fixed = (frame.epoch, frame.rss_bytes, frame.peak_rss_bytes, frame.py_blocks, frame.epoch_s, frame.elapsed_s)
        self.writer.epoch_values(*fixed, self._row_tree(), frame.metrics)
        metrics = dict(zip(names or (), frame.metrics, strict=True)) if self.progress is not None else {}
        self._epoch_done(frame.epoch, frame.rss_bytes, frame.elapsed_s, metrics)

    def _row_tree(self) -> records.TreeFigures:
        if self.tree is None:
            return records.NO_TREE
        if self.tree.latest_exact is None and not self.killed:
            self._sample()  # the first row must carry tree figures too
        return self.tree.for_epoch()

    def _epoch_done(self, epoch: int, rss: int, elapsed_s: float, metrics: Mapping[str, float]) -> None:
        self.last_epoch = epoch
        if self.progress is not None:
            self.progress.epoch(epoch, rss, elapsed_s, metrics)
        if rss > self.cap and not self.killed:
            self._sample()  # the worker alone is over the cap: let an exact reading decide now

    def _read(self, fd: int, reader: protocol.MessageReader) -> bool:
        """Read what the pipe holds; handle its whole messages (:mod:`harness.worker.protocol`); False at its end."""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return False
        while True:
            kind, messages = "", reader.feed(chunk)
            try:
                for kind, fields in messages:
                    if kind == protocol.FRAME:
                        self._frame(fields, reader)
                    else:
                        self._handle(kind, fields)
                break
            except (ValueError, KeyError, TypeError) as exc:  # only our worker writes here: a harness bug
                what = f"message ({exc}): {exc.raw!r}" if isinstance(exc, protocol.BadMessage) else f"{kind} ({exc})"
                self._end(records.FAILED, f"bad {what} from the worker", kill=True)
            finally:
                messages.close()  # drops what was handled from the reader's buffer
            chunk = b""  # go on with the messages after the bad one
        self.writer.sync_epochs()
        return True

    def _flush_pending(self) -> None:
        origin = self.t0 if self.t0 is not None else self.spawned_at
        samples = [
            records.Sample(t - origin, reading.worker_rss or 0, epoch, reading.figures)
            for t, reading, epoch in self.pending_samples
        ]
        self.pending_samples.clear()
        self.writer.samples(samples)

    def _sample(self) -> None:
        """Read the tree; record the sample when it saw the worker; end the run when it is over the cap."""
        assert self.tree is not None
        reading = self.tree.read(self.cap)
        if reading.worker_rss is not None and reading.worker_rss > 0:
            now = time.monotonic()
            self.last = reading
            # The epoch in progress; 0 while the worker starts up and builds the loop.
            epoch = self.last_epoch + 1 if self.t0 is not None else 0
            if self.t0 is None:
                self.pending_samples.append((now, reading, epoch))
            else:
                sample = records.Sample(now - self.t0, reading.worker_rss, epoch, reading.figures)
                self.writer.samples([sample])
                if self.progress is not None:
                    self.progress.sample(sample)
        if reading.exact and reading.capped_bytes > self.cap:
            self._over_cap(reading)

    def _over_cap(self, reading: Reading) -> None:
        # Keep the highest reading over the cap, not the first: records read late can show more.
        if self.cap_reading is None or reading.capped_bytes > self.cap_reading.capped_bytes:
            self.cap_reading = reading
        if self.status is None or self.status in (records.TIMEOUT, records.INTERRUPTED):
            self._end(records.MEMORY_CAP, "", kill=True)

    def stop_info(self) -> dict[str, Any]:
        """The figures ``stop`` records: the reading over the cap (the highest), else the latest."""
        reading = self.cap_reading or self.last
        if reading is None:
            return {"rss_bytes": None, "tree_pss_bytes": None, "children": None}
        pss = reading.capped_bytes if reading.exact else None
        if pss is None and self.tree is not None and self.tree.latest_exact is not None:
            pss = self.tree.latest_exact.tree_pss_bytes
        return {"rss_bytes": reading.worker_rss, "tree_pss_bytes": pss, "children": reading.figures.children}

    def _end(self, status: str, message: str, *, kill: bool) -> None:
        if self.status is None or status == records.MEMORY_CAP:
            self.status, self.message = status, message
        if kill:
            self._kill()
        elif self.term_sent_at is None:
            self.term_sent_at = time.monotonic()
            self._signal(signal.SIGTERM)  # the keeper passes it to the trainer

    def _signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signum)

    def _kill(self) -> None:
        """SIGKILL every process of the tree; the keeper then sweeps up anything forked meanwhile and exits."""
        if self.killed or self.proc is None:
            return
        self.killed = True
        if self.tree is not None:
            self.tree.kill_all()

    def _check_limits(self, now: float, deadline: float | None) -> None:
        if self.writer.failure is not None and self.status is None:
            # A full disk or a vanished results directory: what was written is kept, the rest cannot be.
            self._end(records.FAILED, storage.cannot_record(self.run_dir, self.writer.failure), kill=True)
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
        read_fd, write_fd = protocol.record_pipe()
        lifeline_read, lifeline_write = os.pipe()  # both non-inheritable: only pass_fds reaches the keeper
        job = job | {"parent_pid": os.getpid()}
        try:
            with open(self.run_dir / storage.WORKER_LOG, "ab") as log:
                self.spawned_at = time.monotonic()
                self.proc = subprocess.Popen(
                    protocol.worker_command(write_fd, "--job", job, lifeline=lifeline_read),
                    pass_fds=(write_fd, lifeline_read),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            os.close(write_fd)
            os.close(lifeline_read)
            write_fd = lifeline_read = -1
            proc = self.proc  # returncode is set when it is reaped (by poll or wait), never before
            self.tree = TreeSampler(
                proc.pid, self.request.sample_interval_s, root_unreaped=lambda: proc.returncode is None
            )
            self.flag.watching = True
            self._poll_loop(read_fd)
            return ending.reap(proc, self.tree, GRACE_S)
        finally:
            self.flag.watching = False
            for fd in (read_fd, write_fd, lifeline_read):
                if fd >= 0:
                    os.close(fd)
            if self.proc is not None and self.proc.poll() is None:
                ending.kill_keeper(self.proc, self.tree)
                self.proc.wait()
            if self.tree is not None:
                ending.sweep(self.tree)  # a keeper killed by the training code left these to us
            os.close(lifeline_write)

    def _poll_loop(self, read_fd: int) -> None:
        interval = self.request.sample_interval_s
        deadline = self.spawned_at + self.request.timeout_s if self.request.timeout_s else None
        poller = select.poll()
        poller.register(read_fd, select.POLLIN | select.POLLHUP)
        reader = protocol.MessageReader()
        self.next_sample = time.monotonic()
        read_after = 0.0
        while True:
            now = time.monotonic()
            wait = max(0.0, self.next_sample - now)
            if deadline is not None and self.status is None:
                wait = min(wait, max(0.0, deadline - now))
            if poller.poll(math.ceil(wait * 1000)):
                # A fast loop sends hundreds of records a second: let them gather for a few milliseconds
                # and handle them in one go, so this process does not steal the worker's CPU for each one.
                if time.monotonic() < read_after:
                    time.sleep(max(0.0, min(read_after, self.next_sample) - time.monotonic()))
                if not self._read(read_fd, reader):
                    break  # end of file: the trainer has exited (or closed the pipe)
                read_after = time.monotonic() + READ_BATCH_S
            if self.flag.job_control(None if self.killed else self.tree):
                self.next_sample = time.monotonic()  # continued after Ctrl-Z: sample at once
            now = time.monotonic()
            if now >= self.next_sample:
                if not self.killed:
                    self._sample()
                # Keep to the grid, but do not fire a burst of samples after a stall; sooner when
                # the tree races towards the cap.
                gap = self.tree.next_in(interval, self.cap) if self.tree is not None else interval
                soon = time.monotonic() + gap  # from the end of this sample: an exact reading takes a while
                self.next_sample = max(self.next_sample + interval, now) if gap >= interval else soon
            self._check_limits(now, deadline)
        self._flush_pending()

    def close(self) -> None:
        """Close the run's files."""
        self.writer.close()
