"""Ending a worker for good: its keeper's process group first, then whatever of its tree is still alive."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from harness.recording.tree import TreeSampler

SWEEPS = 3  # a keeper killed by the training code leaves its tree to the parent: a few passes, not a wait


def kill_keeper(proc: subprocess.Popen[bytes], tree: TreeSampler | None) -> None:
    """The last resort: the keeper's process group (it leads its own session), the keeper, and every survivor."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
    if tree is not None:
        tree.kill_all()


def reap(proc: subprocess.Popen[bytes], tree: TreeSampler | None, grace_s: float) -> int | None:
    """Wait for the keeper (it is ending what the trainer left); kill everything if it takes longer than ``grace_s``."""
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        kill_keeper(proc, tree)
        return proc.wait()


def sweep(tree: TreeSampler) -> None:
    """Kill every process ever seen in the tree that is somehow still alive."""
    for _ in range(SWEEPS):
        if not tree.survivors():
            return
        tree.kill_all()
        time.sleep(0.01)
