"""Display formats shared by the report and compare: sizes, growth with its interval, rates, seconds, percentages."""

from __future__ import annotations

import math

from harness.sizes import display_unit, format_size


def format_bytes(value: float, signed: bool = False) -> str:
    """A size in binary units (``"3.1 MiB"``); with ``signed``, a leading + or -."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return ("+" if signed and value >= 0 else "") + format_size(value)


def format_growth(value: float, low: float, high: float) -> str:
    """Bytes per epoch with its interval in the value's unit: ``"+4.57 MiB (4.56 .. 4.58)"``."""
    if value is None or math.isnan(value):
        return "-"
    unit, scale = display_unit(
        max(
            abs(value),
            abs(low) if not math.isnan(low) else 0,
            abs(high) if not math.isnan(high) else 0,
        )
    )
    if math.isnan(low) or math.isnan(high):
        return f"{value / scale:+.1f} {unit}"
    # Enough decimals that a narrow interval does not print as "4.6 .. 4.6", at most three.
    decimals = (
        0
        if unit == "B"
        else next(
            (d for d in (1, 2, 3) if f"{low / scale:.{d}f}" != f"{high / scale:.{d}f}"),
            3,
        )
    )
    return f"{value / scale:+.{decimals}f} {unit} ({low / scale:+.{decimals}f} .. {high / scale:+.{decimals}f})"


def format_rate(value: float | None) -> str:
    """Epochs per second with three significant digits."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def format_seconds(value: float | None) -> str:
    """Seconds with three significant digits (``"1.00 s"``, ``"0.318 s"``, ``"517 s"``)."""
    if value is None or math.isnan(value):
        return "not reached"
    return f"{value:#.3g} s" if value < 100 else f"{value:,.0f} s"


def format_percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal."""
    if value is None or math.isnan(value):
        return "-"
    return f"{100 * value:.1f} %"
