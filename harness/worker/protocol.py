"""The worker's wire protocol: JSON lines on a pipe of their own, from the worker to the parent.

The parent (:mod:`harness.recording`) starts a worker with :func:`worker_command`::

    python -m harness.worker --fd N --check '{"variant": ..., "leak": ..., "memory_limit_bytes": ...}'
    python -m harness.worker --fd N --job '{"variant": ..., "config": {...}, "trace_path": ..., "trace_frames": ...,
                                            "memory_limit_bytes": ..., "parent_pid": ...}'

The worker writes one JSON object per line to file descriptor N; its stdout and
stderr go wherever the parent pointed them (worker.log), so whatever the
training code prints never mixes with the records.  Messages (``"type"``):

- ``check``: ``{"ok": true, "description", "leaks"}`` or ``{"ok": false, "message"}`` (``--check`` only);
- ``started``: ``{"t0", "pid", "versions"}``, once the loop is built, just before epoch 1
  (``t0`` is ``time.monotonic()``, comparable across processes on Linux);
- ``epoch``: an :class:`~harness.records.EpochRecord` as a dict;
- ``error``: ``{"phase", "exception", "traceback", "memory_error"}``, then exit status 1
  (2 for a usage error found while resolving the variant);
- ``done``: ``{"stopped"}`` after the last epoch or after the parent asked it to stop (SIGTERM).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any

# The message kinds, as sent in "type".
CHECK = "check"
STARTED = "started"
EPOCH = "epoch"
ERROR = "error"
DONE = "done"
KINDS = (CHECK, STARTED, EPOCH, ERROR, DONE)


def worker_command(fd: int, mode: str, payload: dict[str, Any]) -> list[str]:
    """The command line of a worker that writes its records to ``fd``: ``--check`` or ``--job``."""
    return [sys.executable, "-m", "harness.worker", "--fd", str(fd), mode, json.dumps(payload)]


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
    """The record pipe: one JSON object per line, written whole."""

    def __init__(self, fd: int) -> None:
        os.set_inheritable(fd, False)  # subprocesses of the training code must not hold it open
        self.fd = fd

    def send(self, kind: str, **fields: Any) -> None:
        """Write one message; blocks while the parent's pipe buffer is full."""
        data = (json.dumps({"type": kind} | fields) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
