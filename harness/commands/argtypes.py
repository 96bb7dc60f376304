"""Option types shared by the commands: argparse turns a bad value into one line naming it."""

from __future__ import annotations

import argparse
import json
import math

from harness.jsonfile import is_finite_json


def whole_number(text: str) -> int:
    """An integer option."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def finite_number(text: str) -> float:
    """A finite number option."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE, VALUE as JSON when it parses (numbers, true/false, null), else the text itself."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value
    if not is_finite_json(parsed):  # NaN and Infinity parse, but strict JSON (meta.json) refuses them
        raise argparse.ArgumentTypeError(f"expected a finite value, got {text!r}")
    return key.strip(), parsed
