"""Claims: a sweep takes a planned run before performing it, so sweeps sharing a results directory never repeat one.

A claim is a file ``<results>/.claims/<run key>`` locked with ``flock`` by the
sweep performing that run (and by its ``harness run`` process, which inherits
the descriptor, so the claim lasts until the run has really ended even if the
sweep was killed).  Another sweep that finds it locked leaves that run to its
holder and comes back to it at the end.  When a run ends, its holder writes
the outcome into the claim (run directory and status), so a sweep that waited
adopts a run another sweep performed meanwhile, whatever its ending, instead
of performing it again; a claim whose holder died (the kernel drops the lock)
is free to take, and that run is performed again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.sweep.planned import PlannedRun

CLAIMS_DIR = ".claims"


@dataclass
class Claim:
    """A planned run taken by this sweep: an open, locked file."""

    run: PlannedRun
    path: Path
    fd: int

    def note(self) -> dict[str, Any] | None:
        """The outcome the last holder wrote, with the time it was written (``at``); None when there is none."""
        try:
            size = os.fstat(self.fd).st_size
            note = json.loads(os.pread(self.fd, size, 0) or b"null")
            return note | {"at": os.fstat(self.fd).st_mtime} if isinstance(note, dict) else None
        except (OSError, ValueError):
            return None

    def release(self, run_dir: str | None = None, status: str | None = None) -> None:
        """Write the outcome (when the run was performed) and let the run go."""
        if self.fd < 0:
            return
        if status is not None:
            with contextlib.suppress(OSError):
                text = json.dumps({"run_dir": run_dir, "status": status}).encode()
                os.ftruncate(self.fd, 0)
                os.pwrite(self.fd, text, 0)
        os.close(self.fd)
        self.fd = -1


def take(results_dir: Path, run: PlannedRun) -> Claim | None:
    """Claim ``run`` in ``results_dir`` if no one holds it; None while another sweep does."""
    folder = results_dir / CLAIMS_DIR
    folder.mkdir(exist_ok=True)
    path = folder / run.key()
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return Claim(run, path, fd)
