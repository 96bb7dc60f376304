"""Memory sizes as people write them: "300MiB", "1.5 GiB", "2GB", "4096" (printing them: :mod:`harness.formatting`)."""

from __future__ import annotations

import math
import re

from harness.errors import UsageError

# Binary units are powers of 1024, decimal ones powers of 1000, as in IEC 80000-13;
# "B" alone (or no unit) means bytes.
UNITS: dict[str, int] = {
    "b": 1,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}

ACCEPTED = (
    "a byte count or a number with a unit: B, KiB, MiB, GiB, TiB (1024-based) or KB, MB, GB, TB (1000-based),"
    " e.g. 300MiB or 1.5 GiB"
)

# No memory is larger: a cap, a budget or a limit beyond it is a typo (and 2 * cap + 1 GiB must fit
# the kernel's 64-bit resource limits).
MAX_SIZE = 1024**6  # 1 EiB
MAX_SIZE_TEXT = "1 EiB"

_SIZE = re.compile(r"^\s*(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>[a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes in ``text`` ("300MiB", "1.5 GiB", "2 GB", "4096"); UsageError quoting bad input."""
    if isinstance(text, bool):
        raise UsageError(f"invalid size {text!r}: expected {ACCEPTED}")
    if isinstance(text, int):
        if text < 0:
            raise UsageError(f"invalid size {text!r}: a size cannot be negative")
        if text > MAX_SIZE:
            raise UsageError(f"invalid size {text!r}: more than the {MAX_SIZE_TEXT} any size may be")
        return text
    if not isinstance(text, str):
        raise UsageError(f"invalid size {text!r}: expected {ACCEPTED}")
    match = _SIZE.match(text)
    if match is None:
        raise UsageError(f"invalid size {text!r}: expected {ACCEPTED}")
    unit = match["unit"].lower() or "b"
    if unit not in UNITS:
        raise UsageError(f"invalid size {text!r}: unknown unit {match['unit']!r}; expected {ACCEPTED}")
    number = float(match["number"])
    if unit == "b" and not number.is_integer():
        raise UsageError(f"invalid size {text!r}: a byte count must be a whole number")
    value = number * UNITS[unit]
    if not math.isfinite(value) or value > MAX_SIZE:
        raise UsageError(f"invalid size {text!r}: more than the {MAX_SIZE_TEXT} any size may be")
    return round(value)
