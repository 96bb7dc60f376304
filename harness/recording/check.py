"""Resolve a variant and its leak, or check a script, in a throw-away worker, before anything is written."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

from harness.errors import UsageError
from harness.interface import RunConfig
from harness.recording.request import VariantCheck, default_memory_cap, memory_limit_for
from harness.scripts import Script
from harness.worker.protocol import check_reply, worker_command

CHECK_TIMEOUT_S = 120.0  # resolving a variant imports it: torch alone takes seconds
STOP_S = 5.0  # a check past its time gets this long to end (its keeper ends what the import started)
POLL_S = 0.1  # how often a waiting check looks for Ctrl-C


def check_variant(
    variant: str,
    leak: str | None,
    timeout_s: float = CHECK_TIMEOUT_S,
    memory_limit_bytes: int | None = None,
    config: RunConfig | None = None,
    interrupted: Callable[[], bool] = lambda: False,
    lines: tuple[str, ...] | None = None,
) -> VariantCheck:
    """Resolve the variant and leak in a throw-away worker; UsageError naming what is wrong.

    Importing runs the module's top-level code: the check gets the run's RLIMIT_DATA
    backstop (default: that of the default cap) and ``timeout_s``.  Given the run's
    ``config``, the class's optional ``check_config`` judges its options too, and given
    ``lines`` each ``--lines`` target must be a Python function it can import.  While
    it waits it asks ``interrupted()`` every :data:`POLL_S`: when Ctrl-C or SIGTERM
    came, the check is stopped and KeyboardInterrupt raised at once, not after the
    import (which may take minutes) has finished.
    """
    payload: dict[str, Any] = {"variant": variant, "leak": leak}
    if config is not None:
        payload["config"] = config.to_dict()
    if lines is not None:
        payload["lines"] = list(lines)
    verdict = _ask(payload, f"variant {variant!r}", timeout_s, memory_limit_bytes, interrupted)
    return VariantCheck(verdict["description"], dict(verdict["leaks"]))


def check_script_runs(
    script: Script,
    timeout_s: float = CHECK_TIMEOUT_S,
    memory_limit_bytes: int | None = None,
    interrupted: Callable[[], bool] = lambda: False,
) -> None:
    """Check in a throw-away worker that ``script`` can run (compiled, not run); UsageError naming what is wrong.

    A path is only read and compiled; a module is found as ``python -m`` finds
    it, which imports its parent packages: hence the worker.  ``interrupted`` as for
    :func:`check_variant`.
    """
    _ask({"script": script.to_dict()}, f"script {script.label!r}", timeout_s, memory_limit_bytes, interrupted)


def _ask(
    payload: dict[str, Any],
    label: str,
    timeout_s: float,
    memory_limit_bytes: int | None,
    interrupted: Callable[[], bool],
) -> dict[str, Any]:
    """Run ``python -m harness.worker --check`` on ``payload``; its ok verdict, or UsageError with its message."""
    limit = memory_limit_bytes if memory_limit_bytes is not None else memory_limit_for(default_memory_cap())
    payload = payload | {"parent_pid": os.getpid(), "memory_limit_bytes": limit}
    read_fd, write_fd = os.pipe()
    try:
        command = worker_command(write_fd, "--check", payload)
        # A session of its own: a terminal's Ctrl-C reaches only the parent, which decides.
        proc = subprocess.Popen(
            command,
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _, stderr = proc.communicate(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                if interrupted():
                    _stop(proc)
                    raise KeyboardInterrupt from None
                if time.monotonic() >= deadline:
                    _stop(proc)
                    raise UsageError(f"loading {label} took longer than {timeout_s:.0f} s") from None
        os.close(write_fd)
        write_fd = -1
        with os.fdopen(read_fd, "rb") as pipe:
            read_fd = -1
            lines = pipe.read().decode(errors="replace").splitlines()
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    verdict = check_reply(lines)
    if verdict is None:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"cannot load {label}: the check exited with status {proc.returncode}: {tail}")
    if not verdict["ok"]:
        raise UsageError(verdict["message"])
    return verdict


def _stop(proc: subprocess.Popen[str]) -> None:
    """End a check: SIGTERM (its keeper passes it on and ends whatever the import started), then SIGKILL."""
    proc.terminate()
    try:
        proc.communicate(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
