"""Where a run lives: the run directory's file names, its id, and making it.

A run directory is never overwritten: its name ends in a random suffix and it
is made with an exclusive ``os.mkdir``.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import UsageError

META = "meta.json"
EPOCHS = "epochs.csv"
SAMPLES = "samples.csv"
TRACE = "trace.json"
LINES = "lines.json"
WORKER_LOG = "worker.log"


def utc_now() -> datetime:
    """The current time in UTC (one place, so the format is the same everywhere)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC to the millisecond: 2025-01-31T12:00:00.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe lower-case slug: "tests/fixtures/loops.py:GrowLoop" -> "growloop"."""
    tail = text.rpartition(":")[2] or text
    cleaned = re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")
    return cleaned[:limit] or "variant"


def new_run_id(variant: str, leak: str | None, seed: int | None, moment: datetime | None = None) -> str:
    """ "<UTC yyyymmddTHHMMSS>-<variant>-<leak or noleak>-s<seed>-<6 hex>", unique with high probability.

    A script's run (no seed) is "<UTC yyyymmddTHHMMSS>-<script name>-script-<6 hex>".
    """
    stamp = (moment or utc_now()).astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    if seed is None:
        return f"{stamp}-{slug(variant)}-script-{secrets.token_hex(3)}"
    return f"{stamp}-{slug(variant)}-{slug(leak) if leak else 'noleak'}-s{seed}-{secrets.token_hex(3)}"


def check_results_dir(results_dir: Path, option: str = "--results", what: str = "results directory") -> None:
    """UsageError unless ``results_dir`` is, or can be made, a writable directory; writes nothing.

    ``option`` and ``what`` name it in the message: ``--out``, "report directory".
    """
    path = Path(results_dir).expanduser().absolute()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} {str(results_dir)!r} cannot be used: {str(probe)!r} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {str(results_dir)!r} is not writable; pass {option} DIR with a writable DIR")


def create_run_dir(results_dir: Path, variant: str, leak: str | None, seed: int | None) -> Path:
    """Make ``results_dir/<new run id>`` exclusively (another id on the rare clash); returns its path."""
    check_results_dir(results_dir)
    results_dir = Path(results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create results directory {str(results_dir)!r}: {exc.strerror}") from None
    for _ in range(20):
        path = results_dir / new_run_id(variant, leak, seed)
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot create a run directory in {str(results_dir)!r}: {exc.strerror}") from None
        return path
    raise RuntimeError(f"could not find a free run id in {results_dir} after 20 tries")
