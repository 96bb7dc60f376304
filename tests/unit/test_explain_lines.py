"""``explain`` of a run profiled with --lines, in-process: the growing lines' table, native or Python, side by side.

lines.json documents are written as the worker writes them (tests/helpers.py:
line_profile, line_row); the run profiled for real is in tests/integration/test_lines.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.report.lines import growing_lines, lines_text, top_lines_summary
from tests.helpers import KIB, MIB, assert_golden, line_profile, line_row, write_run

EPOCHS = 17


def native_profile(**fields: Any) -> dict[str, Any]:
    """17 epochs: a malloc line keeping 512 KiB in every one, a cache filled once, a line below the threshold."""
    rows = [
        line_row(38, 512 * KIB, EPOCHS, source="block = ctypes.memset(LIBC.malloc(size), 1, size)"),
        line_row(12, 4 * MIB / EPOCHS, EPOCHS, grew_epochs=1, source="self.cache = build_cache()"),
        line_row(67, 20 * KIB, EPOCHS, source="logits -= logits.max(axis=1, keepdims=True)"),
        line_row(70, 0, EPOCHS, increment_bytes=8 * MIB * EPOCHS, increment_per_epoch=8 * MIB),
    ]
    return line_profile(rows, epochs=EPOCHS, **fields)


def test_only_lines_that_kept_enough_in_enough_epochs_grow() -> None:
    # GIVEN the profile above WHEN its growing lines are picked THEN only the malloc line: the cache rose in one
    # epoch of 17, the third kept less than the verdict's threshold, the fourth passed its gains on
    assert [row["line"] for row in growing_lines(native_profile())] == [38]


def lines_report() -> str:
    """The text of every case, one after the other, as the golden file holds it."""
    trace = {
        "baseline_epoch": 2,
        "final_epoch": 19,
        "heap_baseline_bytes": 10 * MIB,
        "heap_final_bytes": 10 * MIB + 17 * 300,
        "sites": [
            {"file": "/work/project/loop.py", "line": 71, "size_diff": 17 * 300, "count_diff": 3, "size": 1, "count": 1}
        ],
    }
    python_objects = line_profile(
        [line_row(127, 23 * MIB, 8, source="outcomes = [self._learn_batch(batch) for batch in self._batches]")],
        epochs=8,
        py_blocks_final=100_000 + 8 * 600_000,
    )
    mostly_native = line_profile([line_row(115, 986 * KIB, 27)], epochs=27, py_blocks_final=100_000 + 27 * 567)
    cases = {
        "a native leak, untraced": lines_text(native_profile(), root="/work/project"),
        "the same, traced: the heap beside the lines": lines_text(native_profile(), trace, root="/work/project"),
        "Python objects": lines_text(python_objects, root="/work/project"),
        "small objects explain part of it at most": lines_text(mostly_native, root="/work/project"),
        "no growing line": lines_text(line_profile([line_row(5, 0, 20)], epochs=20), root="/work/project"),
        "much of it outside the profiled lines": lines_text(
            native_profile(outside={"increment_bytes": 30 * MIB, "kept_bytes": 30 * MIB}, rss_final_bytes=140 * MIB)
        ),
        "ended before its baseline": lines_text(line_profile(epochs=0, final_epoch=None, baseline_epoch=3)),
    }
    return "".join(f"== {name}\n{text}\n" for name, text in cases.items())


def test_a_flat_runs_few_bytes_outside_the_lines_are_not_called_much_of_it() -> None:
    # GIVEN a flat run (no growing line) whose RSS rose 42 B/epoch, all of it between epochs
    profile = line_profile(
        epochs=97, rss_final_bytes=100 * MIB + 42 * 97, outside={"increment_bytes": 42 * 97, "kept_bytes": 42 * 97}
    )
    # WHEN explained THEN it says no line grew, and does not blame the harness for the noise
    text = lines_text(profile)
    assert "no line kept growing" in text and "Much of it grew outside" not in text


def test_the_lines_tables_read_as_the_golden_file() -> None:
    assert_golden("lines_tables.txt", lines_report())


def test_the_plugin_summary_names_the_top_growing_lines() -> None:
    assert top_lines_summary(native_profile(), root="/work/project") == [
        "+512.0 KiB/epoch at loop.py:38: block = ctypes.memset(LIBC.malloc(size), 1, size)"
    ]
    assert top_lines_summary(None) == [] and top_lines_summary(line_profile(epochs=0)) == []


def test_explain_prints_the_lines_of_a_profiled_run_and_nothing_of_an_unprofiled_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run leaking 512 KiB an epoch with its lines.json, and the same run without one
    rss = [100 * MIB + 512 * KIB * epoch for epoch in range(1, 20)]
    profiled = write_run(tmp_path, "profiled", rss, lines_json=native_profile())
    plain = write_run(tmp_path, "plain", rss)
    # WHEN explained THEN the first shows the malloc line, the second says nothing about lines
    assert main(["explain", str(profiled)]) == 0
    out = capsys.readouterr().out
    assert "Lines that kept resident memory, epochs 2 -> 19" in out and "loop.py:38" in out
    assert main(["explain", str(plain)]) == 0
    assert "Lines that kept" not in capsys.readouterr().out
