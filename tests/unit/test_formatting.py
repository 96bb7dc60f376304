"""Sizes as users write them; sizes, ratios and durations as we print them; text tables."""

from __future__ import annotations

import pytest

from harness import formatting
from harness.errors import UsageError
from harness.formatting import format_duration, format_size, format_times, text_table
from harness.sizes import parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("0", 0),
        ("512B", 512),
        ("512 b", 512),
        ("1KiB", 1024),
        ("300MiB", 300 * 1024**2),
        ("300 mib", 300 * 1024**2),
        ("1.5 GiB", 3 * 1024**3 // 2),
        ("2GB", 2_000_000_000),
        ("1 kb", 1000),
        ("0.5MB", 500_000),
        (".5 KiB", 512),
        ("  7 MiB  ", 7 * 1024**2),
        ("1TiB", 1024**4),
        (1234, 1234),
    ],
)
def test_parse_size_accepts_bytes_binary_and_decimal_units(text: str | int, expected: int) -> None:
    # GIVEN a size as a user writes it WHEN it is parsed THEN it is that many bytes
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "invalid size ''"),
        ("abc", "invalid size 'abc'"),
        ("12XB", "unknown unit 'XB'"),
        ("-5MiB", "invalid size '-5MiB'"),
        ("1.5", "whole number"),
        ("1.5 B", "whole number"),
        ("5 MiB extra", "invalid size '5 MiB extra'"),
        ("1e3", "invalid size '1e3'"),
        (-1, "cannot be negative"),
        (True, "invalid size True"),
    ],
)
def test_parse_size_refuses_bad_input_quoting_it_and_naming_what_is_accepted(text: str | int, fragment: str) -> None:
    # GIVEN a malformed size WHEN it is parsed THEN a UsageError quotes it
    with pytest.raises(UsageError) as caught:
        parse_size(text)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message
    if "whole number" not in fragment and "negative" not in fragment:
        assert "KiB" in message and "MB" in message  # says what is accepted


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (int(3.1 * 1024**2), "3.1 MiB"),
        (-2 * 1024**3, "-2.0 GiB"),
        (5 * 1024**4, "5.0 TiB"),
        (1536.0, "1.5 KiB"),
    ],
)
def test_format_size_uses_binary_units_with_one_decimal(n: float, expected: str) -> None:
    # GIVEN a byte count WHEN it is formatted THEN people read it in KiB/MiB/GiB
    assert format_size(n) == expected


def test_format_then_parse_round_trips_within_the_printed_precision() -> None:
    # GIVEN sizes across the units WHEN formatted and parsed back THEN they agree to the printed decimal
    for n in (1, 999, 4096, 12_345_678, 3 * 1024**3 + 17):
        back = parse_size(format_size(n))
        assert abs(back - n) <= max(0.05 * n, 1)


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 5_000, 1024**2 - 1, 1024**2, 3.5 * 1024**3, 2 * 1024**4, -70_000])
def test_display_unit_is_the_unit_format_size_prints(size: float) -> None:
    # GIVEN a size WHEN its display unit is asked THEN it is the unit format_size prints, with its factor
    unit, factor = formatting.display_unit(size)
    assert formatting.format_size(size).split()[-1] == unit
    assert factor == {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}[unit]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1162.54, "1,163x"),
        (11.49, "11.5x"),
        (7.434, "7.43x"),
        (1.0, "1.00x"),
        (0.1342, "0.134x"),
        (0.001354, "0.00135x"),
    ],
)
def test_ratios_keep_three_significant_figures_and_no_false_precision(value: float, text: str) -> None:
    # WHEN a ratio is formatted THEN small ones keep 3 significant figures, large ones drop decimals
    assert format_times(value) == text


def test_table_aligns_text_left_and_numbers_right() -> None:
    assert text_table(["name", "n"], [["a", "1"], ["bbb", "22"]], right=[False, True], indent=2) == (
        "  name   n\n  a      1\n  bbb   22"
    )


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0s"), (42, "42s"), (185, "3m05s"), (7620, "2h07m")])
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
