"""JSON files written whole: a reader sees the old file or the new one, never half of one.

Standard library only, so the worker (which writes trace.json) stays free of pandas.
Strict JSON only: NaN and infinities, which strict readers refuse, are refused here.
"""

from __future__ import annotations

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
