"""Facts about the machine, the software versions and the project's git commit, for meta.json."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from harness.loops import OPTIONAL

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def host_info() -> dict[str, Any]:
    """hostname, platform, cpu_count and memory_total_bytes of this machine."""
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": psutil.virtual_memory().total,
    }


def _distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Python, NumPy and leakbench versions, read from package metadata (imports nothing heavy)."""
    return {
        "python": platform.python_version(),
        "numpy": _distribution_version("numpy"),
        "leakbench": _distribution_version("leakbench"),
    }


def loaded_versions() -> dict[str, str]:
    """Versions of optional frameworks the training code actually imported (called in the worker)."""
    found = {}
    for name in dict.fromkeys(OPTIONAL.values()):  # the frameworks our optional variants need
        module = sys.modules.get(name)
        if module is not None:
            found[name] = str(getattr(module, "__version__", "unknown"))
    return found


def git_commit(root: Path = _PROJECT_ROOT) -> str | None:
    """The commit checked out in the project's repository, or None when it is not a git checkout."""
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None
