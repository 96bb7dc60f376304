"""The worker's wire protocol: JSON lines and binary epoch frames on a pipe of their own, from the worker to the parent.

The parent (:mod:`harness.recording`) starts a worker with :func:`worker_command`::

    python -m harness.worker --fd N --check '{"variant": ..., "leak": ..., "memory_limit_bytes": ..., "lines": [...]}'
    python -m harness.worker --fd N [--lifeline M] --job '{"variant": ..., "config": {...}, "trace_path": ...,
                                            "trace_frames": ..., "gc_collect": ..., "lines_path": ..., "lines": [...],
                                            "memory_limit_bytes": ..., "parent_pid": ...}'

A script run (:mod:`harness.worker.script`) sends ``{"script": {"path", "module", "args"}, ...}`` in place of
the variant (and config), with ``"marks"`` (false with ``--window``) and ``"window_s"`` in its job.

The process started is the keeper (:mod:`harness.worker.keeper`); the trainer
it forks writes the records.  ``--lifeline M`` is the read end of a pipe whose
write end only the parent holds: its end of file tells the keeper the parent died.

The worker writes one JSON object per line to file descriptor N; its stdout and
stderr go wherever the parent pointed them (worker.log), so whatever the
training code prints never mixes with the records.  Messages (``"type"``):

- ``check``: ``{"ok": true, "description", "leaks"}`` or ``{"ok": false, "message"}`` (``--check`` only);
- ``worker``: ``{"pid"}``, the trainer's pid, first thing after the fork (``--job`` only), so the
  parent measures it while the loop is imported and built;
- ``started``: ``{"t0", "pid", "versions"}``, once the loop is built, just before epoch 1
  (``t0`` is ``time.monotonic()``, comparable across processes on Linux);
- ``epoch``: an :class:`~harness.records.EpochRecord` as a dict; or, from the second epoch of a run that
  is not traced and whose metrics keep the first epoch's names, a binary frame (below);
- ``error``: ``{"phase", "exception", "traceback", "memory_error"}``, then exit status 1
  (2 for a usage error found while resolving the variant);
- ``tracer``: ``{"pid", "ended"}`` before the tracer's child (``--trace``) is forked (pid null), once it is
  and once it is gone: the parent leaves it out of the tree's figures and of the memory cap, and still ends it
  with the run;
- ``done``: ``{"stopped", "gc"}`` after the last epoch or after the parent asked it to stop (SIGTERM); ``gc`` is
  what the garbage-aware readings did (:mod:`harness.worker.gc_readings`); a script's also carries
  ``exit_status`` (its own, which the trainer then exits with) and ``versions``.

Epoch frames.  A record costs its JSON encoding far more than its reading:
after a 1 ms NumPy epoch has pushed the interpreter out of the caches,
``json.dumps`` of a record took 26 us and packing the same figures 6 us
(``benchmarks/bench_recording.py``).  So a fast loop's records go as
:data:`EPOCH_FRAME`: the byte :data:`FRAME_MARK` (never the first byte of a
JSON line), the metric count, epoch, rss_bytes, peak_rss_bytes, py_blocks (-1
when not counted: null), epoch_s and elapsed_s, then one float64 per metric in
the order of the first epoch record's ``metrics``; heap_bytes and tracer_bytes
are null.  Like a line, a frame is one write, which a pipe takes whole up to
4 KiB (500 metrics), so a worker killed at any moment leaves no record half
written.  :class:`MessageReader` splits the stream back into messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import sys
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

# The message kinds, as sent in "type".
CHECK = "check"
WORKER = "worker"
STARTED = "started"
EPOCH = "epoch"
ERROR = "error"
DONE = "done"
TRACER = "tracer"
KINDS = (CHECK, WORKER, STARTED, EPOCH, ERROR, DONE, TRACER)
FRAME = "epoch frame"  # what MessageReader yields for an epoch frame: an EpochFrame, not a dict

FRAME_MARK = 0x01
# mark, metric count, epoch, rss_bytes, peak_rss_bytes, py_blocks, epoch_s, elapsed_s; then the metrics.
EPOCH_FRAME = struct.Struct("<BHIqqqdd")
MAX_FRAME_METRICS = 0xFFFF
PIPE_BYTES = 1 << 20  # the record pipe's size where it can be set: 50 ms of a 0.1 ms loop's frames is 30 KiB


class EpochFrame(NamedTuple):
    """An epoch frame's numbers, as read: typed by the frame's format, in the first epoch record's metric order."""

    epoch: int
    rss_bytes: int
    peak_rss_bytes: int
    py_blocks: int | None  # None: not counted at this epoch (-1 in the frame)
    epoch_s: float
    elapsed_s: float
    metrics: tuple[float, ...]


def record_pipe() -> tuple[int, int]:
    """A pipe for the records, of :data:`PIPE_BYTES` where the system allows (Linux); (read end, write end).

    The parent reads it in batches (every 50 ms): a fast loop's records must fit
    meanwhile, or the trainer would wait on a full pipe (64 KiB by default).
    """
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # F_SETPIPE_SZ: Linux only, up to fs.pipe-max-size
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return read_fd, write_fd


def epoch_frame(metrics: int) -> struct.Struct:
    """The frame of an epoch record with ``metrics`` metric values (compiled once per run by the sender)."""
    return struct.Struct(EPOCH_FRAME.format + "d" * metrics)


def worker_command(fd: int, mode: str, payload: dict[str, Any], lifeline: int | None = None) -> list[str]:
    """The command line of a worker that writes its records to ``fd``: ``--check`` or ``--job``."""
    extra = ["--lifeline", str(lifeline)] if lifeline is not None else []
    return [sys.executable, "-m", "harness.worker", "--fd", str(fd), *extra, mode, json.dumps(payload)]


def decode(line: bytes | str) -> tuple[str, dict[str, Any]]:
    """(kind, fields) of one message line; ValueError for a line that is not a message of ours."""
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"a message must be a JSON object, got {type(message).__name__}")
    kind = message.pop("type", None)
    if kind not in KINDS:
        raise ValueError(f"unknown message type {kind!r}")
    return kind, message


def check_reply(lines: Iterable[str]) -> dict[str, Any] | None:
    """The fields of the last ``check`` message among ``lines``, or None when there is none."""
    reply = None
    for line in lines:
        try:
            kind, fields = decode(line)
        except ValueError:
            continue
        if kind == CHECK:
            reply = fields
    return reply


class Channel:
    """The record pipe: one message per write, written whole; only in the process that opened it.

    Processes the training code starts must not hold the pipe, or the parent
    would wait for their end as for the worker's: it is not inherited across
    exec, and a fork of the trainer (multiprocessing's default) gets /dev/null
    in its place at once, so the child neither holds the pipe nor writes to it,
    and the descriptor's number is not reused for a file of the child's.
    """

    def __init__(self, fd: int) -> None:
        os.set_inheritable(fd, False)
        self.fd = fd
        self.owned = True  # False in a forked child (a flag, not a getpid() each epoch: that is a system call)
        _OPEN_CHANNELS.add(self)

    def close(self) -> None:
        """Close the pipe; a later fork leaves the number alone (the worker never needs this: it ends with _exit)."""
        _OPEN_CHANNELS.discard(self)
        self.owned = False
        os.close(self.fd)

    def _disown(self) -> None:
        """In a forked child: let go of the pipe."""
        self.owned = False
        try:
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            os.dup2(null, self.fd, inheritable=False)
            os.close(null)
        except OSError:
            pass

    def send(self, kind: str, **fields: Any) -> None:
        """Write one message as a JSON line (nothing in a forked child); blocks while the parent's pipe is full."""
        self.write((json.dumps({"type": kind} | fields) + "\n").encode())

    def write(self, data: bytes) -> None:
        """Write one encoded message (a JSON line or an epoch frame) whole; nothing in a forked child."""
        if not self.owned:
            return
        view = memoryview(data)
        while view:  # a pipe takes up to 4 KiB whole; more may take several writes
            written = os.write(self.fd, view)
            view = view[written:]


# The channels open in this process: a forked child lets go of each (one hook, registered once: a hook per
# channel would outlive a closed one and replace whatever file took its number in every later fork).
_OPEN_CHANNELS: weakref.WeakSet[Channel] = weakref.WeakSet()


def _disown_channels() -> None:
    for channel in list(_OPEN_CHANNELS):
        channel._disown()
    _OPEN_CHANNELS.clear()


os.register_at_fork(after_in_child=_disown_channels)


class BadMessage(ValueError):
    """Bytes on the record pipe that are not a message of ours; ``raw`` is (the start of) them."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.raw = raw[:200]


class MessageReader:
    """Splits the bytes read from the record pipe into messages: JSON lines and epoch frames, in order.

    A line is yielded as (kind, its fields); a frame as (:data:`FRAME`, an
    :class:`EpochFrame`), whose numbers the parent writes as they are
    (:meth:`fields` gives the dict its line would have been).  A frame's metric
    values are named after the first epoch record's metrics, which is always a
    JSON line (the sender learns the names from it).
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.metric_names: tuple[str, ...] | None = None
        self._frames: dict[int, struct.Struct] = {}  # by metric count: compiled once, not for every frame

    def feed(self, chunk: bytes) -> Iterator[tuple[str, Any]]:
        """Each whole message read so far, as (kind, fields or frame); BadMessage for bytes that are none of ours.

        A message cut by the end of ``chunk`` waits in the buffer for the next
        one.  A bad message is consumed before BadMessage is raised: feed
        ``b""`` to go on with the messages after it.
        """
        buffer = self.buffer
        buffer.extend(chunk)
        start = 0
        try:
            while start < len(buffer):
                if buffer[start] == FRAME_MARK:
                    if len(buffer) - start < EPOCH_FRAME.size:
                        break
                    count = EPOCH_FRAME.unpack_from(buffer, start)[1]
                    size = EPOCH_FRAME.size + 8 * count
                    if len(buffer) - start < size:
                        break
                    names, at = self.metric_names, start
                    start += size  # a bad frame is consumed too: the next read starts after it
                    if names is None or count != len(names):
                        known = "none" if names is None else len(names)
                        reason = f"an epoch frame of {count} metrics, where the first epoch record named {known}"
                        raise BadMessage(reason, bytes(buffer[at:start]))
                    frame = self._frames.get(count) or self._frames.setdefault(count, epoch_frame(count))
                    _, _, epoch, rss, peak, blocks, epoch_s, elapsed_s, *metrics = frame.unpack_from(buffer, at)
                    blocks_or_none = None if blocks < 0 else blocks
                    yield FRAME, EpochFrame(epoch, rss, peak, blocks_or_none, epoch_s, elapsed_s, tuple(metrics))
                else:
                    end = buffer.find(b"\n", start)
                    if end < 0:
                        break
                    line = bytes(buffer[start:end])
                    start = end + 1
                    try:
                        kind, fields = decode(line)
                    except ValueError as exc:
                        raise BadMessage(str(exc), line) from None
                    if kind == EPOCH and self.metric_names is None and isinstance(fields.get("metrics"), dict):
                        self.metric_names = tuple(fields["metrics"])
                    yield kind, fields
        finally:
            del buffer[:start]

    def fields(self, frame: EpochFrame) -> dict[str, Any]:
        """The fields of an epoch frame, as its JSON line would have carried them."""
        assert self.metric_names is not None  # a frame is only read once a line named the metrics
        return {
            "epoch": frame.epoch,
            "rss_bytes": frame.rss_bytes,
            "peak_rss_bytes": frame.peak_rss_bytes,
            "heap_bytes": None,
            "py_blocks": frame.py_blocks,
            "epoch_s": frame.epoch_s,
            "elapsed_s": frame.elapsed_s,
            "metrics": dict(zip(self.metric_names, frame.metrics, strict=True)),
            "tracer_bytes": None,
        }
