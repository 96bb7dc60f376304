"""JSON files written whole: a reader sees the old file or the new one, never half of one.

Standard library only, so the worker (which writes trace.json) stays free of pandas.
Strict JSON only: NaN and infinities, which strict readers refuse, are refused here.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path``, fsync it, then rename it into place.

    ValueError for NaN or infinity in ``data``; on any failure (a full disk) the
    temporary file is removed and the old ``path`` is left as it was.
    """
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    # A name of its own per write: two writers in one process, or two processes, never share one.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def rewrite_json_in_place(path: Path, data: Any) -> None:
    """Overwrite ``path`` with JSON inside the blocks it already has: the last resort on a full disk.

    A full disk has no room for :func:`write_json_atomic`'s temporary copy, and
    a run's final status must still reach its meta.json.  Not atomic, so only
    done when the new text fits the file's allocated blocks (checked first:
    then the write needs no new block and cannot fail half-way for lack of
    space); otherwise OSError(ENOSPC) and the file is left as it was.
    """
    text = (json.dumps(data, indent=1, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY)
    try:
        if len(text) > os.fstat(fd).st_blocks * 512:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        os.pwrite(fd, text, 0)
        os.ftruncate(fd, len(text))
        os.fsync(fd)
    finally:
        os.close(fd)


def is_finite_json(value: Any, depth: int = 0) -> bool:
    """True when ``value`` is JSON that strict readers accept: no NaN or infinity at any depth."""
    if depth > 100:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_finite_json(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(is_finite_json(v, depth + 1) for v in value)
    return value is None or isinstance(value, (str, int, bool))
