"""How numbers read, in one place: sizes, growth rates with their intervals, speeds, ratios, times, tables.

Every command and report formats through these functions, so a size, a growth
per epoch or a speed reads the same in ``run``, ``explain``, ``check``, the
report, ``compare`` and ``bench``.  A missing value (None or NaN) reads ``-``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

MISSING = "-"
_BINARY_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def missing(value: float | None) -> bool:
    """True for None and NaN: a number that was not measured."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def display_unit(size: float) -> tuple[str, int]:
    """The unit :func:`format_size` shows ``size`` bytes in, and its factor: ``("MiB", 1048576)``."""
    magnitude = abs(float(size))
    for unit, factor in _BINARY_UNITS:
        if magnitude >= factor:
            return unit, factor
    return "B", 1


def format_size(n: float) -> str:
    """``n`` bytes for people: "512 B", "3.1 MiB", "-2.0 GiB" (1024-based, one decimal)."""
    unit, factor = display_unit(n)
    return f"{n:.0f} B" if factor == 1 else f"{n / factor:.1f} {unit}"


def format_bytes(value: float | None, signed: bool = False) -> str:
    """A size in binary units (``"3.1 MiB"``), ``-`` when missing; with ``signed``, a leading + or -."""
    if missing(value):
        return MISSING
    return ("+" if signed and value >= 0 else "") + format_size(value)


def format_rate(bytes_per_epoch: float, per: str = "epoch") -> str:
    """A growth rate: ``"12.3 MiB/epoch"`` (``per="window"``: a script's windows, ``"12.3 MiB/window"``)."""
    return f"{format_size(bytes_per_epoch)}/{per}"


def format_rate_ci(rate: float, low: float, high: float, signed: bool = False, per: str = "epoch") -> tuple[str, str]:
    """(``"12.3 MiB/epoch"``, ``"12.1-12.5 MiB"``): a rate and its interval, all in the unit of the largest.

    One decimal, more (up to three) only where it takes them to tell two bounds
    apart: "23.39-23.41 MiB", not "23.4-23.4 MiB"; bounds equal to three decimals
    read "4.6-4.6 MiB".
    """
    unit, factor = display_unit(max(abs(rate), abs(low), abs(high)))
    differ = (d for d in (1, 2, 3) if f"{low / factor:.{d}f}" != f"{high / factor:.{d}f}")
    digits = 0 if factor == 1 else next(differ, 1)
    a, b = f"{low / factor:.{digits}f}", f"{high / factor:.{digits}f}"
    between = f"{a}-{b}" if low >= 0 else f"{a} to {b}"
    sign = "+" if signed and rate >= 0 else ""
    return f"{sign}{rate / factor:.{digits}f} {unit}/{per}", f"{between} {unit}"


def format_growth(rate: float | None, low: float | None, high: float | None, per: str = "epoch") -> str:
    """A table cell: ``"+4.57 MiB/epoch (4.56-4.58 MiB)"``; the rate alone when the interval is missing."""
    if missing(rate):
        return MISSING
    if missing(low) or missing(high):
        return format_bytes(rate, signed=True) + f"/{per}"
    text, interval = format_rate_ci(rate, low, high, signed=True, per=per)
    return f"{text} ({interval})"


def format_speed(epochs_per_s: float | None) -> str:
    """Epochs per second to four significant figures at most: "1,013", "136.3", "0.853"."""
    if missing(epochs_per_s):
        return MISSING
    if epochs_per_s >= 1000:
        return f"{epochs_per_s:,.0f}"
    if epochs_per_s >= 100:
        return f"{epochs_per_s:.1f}"
    return f"{epochs_per_s:.3g}"


def format_times(ratio: float | None) -> str:
    """A ratio: "1,163x", "11.5x", "7.43x", "1.00x", "0.134x"."""
    if missing(ratio):
        return MISSING
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x" if ratio >= 1 else f"{ratio:.3g}x"


def format_percent(fraction: float | None) -> str:
    """A fraction as a percentage: ``"97.6%"`` with one decimal, ``"0.034%"`` to two digits under 1%."""
    if missing(fraction):
        return MISSING
    percent = 100 * fraction
    return f"{percent:.1f}%" if abs(percent) >= 1 or percent == 0 else f"{percent:.2g}%"


def format_seconds(seconds: float | None) -> str:
    """Seconds with three significant digits (``"1.00 s"``, ``"0.318 s"``, ``"517 s"``)."""
    if missing(seconds):
        return MISSING
    return f"{seconds:#.3g} s" if seconds < 100 else f"{seconds:,.0f} s"


def format_duration(seconds: float | None) -> str:
    """A length of time for an ETA or a total: "42s", "3m05s", "2h07m"; "?" when unknown."""
    if missing(seconds):
        return "?"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_p(p: float) -> str:
    """A p-value: "0.012" or "<0.001"."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def plural(n: int, noun: str) -> str:
    """ "1 epoch", "3 epochs"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def text_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Sequence[bool] | None = None,
    indent: int = 0,
    rule: bool = False,
) -> str:
    """Rows under headers in columns two spaces apart, for a terminal.

    ``right`` aligns a column to the right (default: all left); ``indent`` spaces
    go before each line; ``rule`` puts a line of dashes under the headers.
    """
    right = list(right) if right is not None else [False] * len(headers)
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *cells)]

    def line(values: Sequence[str]) -> str:
        padded = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return (" " * indent + "  ".join(padded)).rstrip()

    lines = [line(list(headers))]
    if rule:
        lines.append(" " * indent + "  ".join("-" * w for w in widths))
    lines += [line(row) for row in cells]
    return "\n".join(lines)


def format_site(file: str, line: object, root: str | None = None, width: int = 60) -> str:
    """ "file:line", relative to ``root`` or site-packages when under them, shortened from the left past ``width``."""
    path = str(file)
    if root and os.path.isabs(path):
        relative = os.path.relpath(path, root)
        if not relative.startswith(".."):
            path = relative
    for marker in ("site-packages", "dist-packages"):
        # "numpy/core/numeric.py" says more than the interpreter's prefix does.
        _, found, tail = path.rpartition(os.sep + marker + os.sep)
        if found:
            path = tail
            break
    text = f"{path}:{line}"
    return text if len(text) <= width else "..." + text[-(width - 3) :]
