"""Reading a run directory's files safely: regular files only, under a size limit, one clear error otherwise.

A run directory may be damaged, half-written or hostile: a file replaced by a
directory, a symlink to a device (``/dev/zero`` never ends), a CSV of
gigabytes.  Every file is checked before it is read (it must be a regular file
no larger than its limit) and read at most to that limit, so a reader's memory
is bounded by the limits below whatever the directory holds.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from harness.errors import UsageError

MiB = 1024 * 1024
# meta.json is a few KiB; a huge one is not ours.
META_LIMIT = 16 * MiB
# trace.json holds at most 25 sites, 25 types and 3 keeper chains: about 50 KiB.
TRACE_LIMIT = 64 * MiB
# lines.json holds at most 100 lines, each about 400 bytes: about 40 KiB.
LINES_LIMIT = 64 * MiB
# epochs.csv grows about 100 bytes an epoch (95 MB at a million epochs, measured), samples.csv about 21
# bytes a sample (1.5 MB an hour): 2 GiB is ten million epochs or a week of samples.
TABLE_LIMIT = 2048 * MiB


def read_text(path: Path, limit: int) -> str | None:
    """The text of a regular file of at most ``limit`` bytes; None when it does not exist (see :func:`read_bytes`)."""
    data = read_bytes(path, limit)
    return None if data is None else data.decode("utf-8", errors="replace")


def read_bytes(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file of at most ``limit`` bytes; None when it does not exist.

    UsageError naming the file when it is not a regular file (a directory, a
    device, a socket), is larger than ``limit``, or cannot be read.
    """
    try:
        info = path.stat()  # follows symlinks: what matters is what would be read
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"cannot read {path}: it is not a regular file")
    if info.st_size > limit:
        raise UsageError(f"cannot read {path}: it is {info.st_size:,} bytes, over the {limit:,}-byte limit")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)  # the file may have grown since the stat
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UsageError(f"cannot read {path}: it grew over the {limit:,}-byte limit while being read")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_json(path: Path, limit: int) -> Any:
    """The strict JSON in a file (no NaN or Infinity); None when it does not exist; UsageError when unreadable."""
    text = read_text(path, limit)
    if text is None:
        return None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None


def complete_lines(data: bytes) -> bytes:
    """``data`` without a last line that was cut off mid-write (a run that died while appending)."""
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    return data
