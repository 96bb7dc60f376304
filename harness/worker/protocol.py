"""The worker's wire protocol: JSON lines on a pipe of their own, from the worker to the parent.

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
- ``epoch``: an :class:`~harness.records.EpochRecord` as a dict;
- ``error``: ``{"phase", "exception", "traceback", "memory_error"}``, then exit status 1
  (2 for a usage error found while resolving the variant);
- ``tracer``: ``{"pid", "ended"}`` before the tracer's child (``--trace``) is forked (pid null), once it is
  and once it is gone: the parent leaves it out of the tree's figures and of the memory cap, and still ends it
  with the run;
- ``done``: ``{"stopped", "gc"}`` after the last epoch or after the parent asked it to stop (SIGTERM); ``gc`` is
  what the garbage-aware readings did (:mod:`harness.worker.gc_readings`); a script's also carries
  ``exit_status`` (its own, which the trainer then exits with) and ``versions``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any

# The message kinds, as sent in "type".
CHECK = "check"
WORKER = "worker"
STARTED = "started"
EPOCH = "epoch"
ERROR = "error"
DONE = "done"
TRACER = "tracer"
KINDS = (CHECK, WORKER, STARTED, EPOCH, ERROR, DONE, TRACER)


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
    """The record pipe: one JSON object per line, written whole; only in the process that opened it.

    Processes the training code starts must not hold the pipe, or the parent
    would wait for their end as for the worker's: it is not inherited across
    exec, and a fork of the trainer (multiprocessing's default) gets /dev/null
    in its place at once, so the child neither holds the pipe nor writes to it,
    and the descriptor's number is not reused for a file of the child's.
    """

    def __init__(self, fd: int) -> None:
        os.set_inheritable(fd, False)
        self.fd = fd
        self.owner = os.getpid()
        os.register_at_fork(after_in_child=self._disown)

    def _disown(self) -> None:
        """In a forked child: let go of the pipe."""
        if self.owner == os.getpid():
            return
        try:
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            os.dup2(null, self.fd, inheritable=False)
            os.close(null)
        except OSError:
            pass

    def send(self, kind: str, **fields: Any) -> None:
        """Write one message (nothing in a forked child); blocks while the parent's pipe buffer is full."""
        if self.owner != os.getpid():
            return
        data = (json.dumps({"type": kind} | fields) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
