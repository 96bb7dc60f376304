"""Fuzzing the readers (issue 15): corrupt run directories give a result or one line and exit 2, never more.

Hypothesis damages a good run directory in many ways at once (truncated,
binary, retyped, huge or missing fields, files replaced by directories or by
links to /dev/zero) and hands it to ``load_run`` and to ``explain``, ``check``,
``compare`` and ``report`` as the CLI runs them (in-process, through
``harness.cli.main``).  Every outcome must be a result, or a UsageError that
``main`` prints as one line with exit 2; nothing may take long, since a file
read without bound would.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import records, storage
from harness.cli import main
from harness.errors import UsageError
from tests.helpers import MIB, line_profile, line_row, write_run

FILES = ("meta.json", "epochs.csv", "samples.csv", "trace.json", "lines.json")
# Deterministic, so CI sees the same cases each time; no example database left in the checkout.  capsys is
# function-scoped but read (and so emptied) after every command, so sharing it across examples is safe.
FUZZ = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECONDS_PER_EXAMPLE = 10.0

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
damages = st.one_of(
    st.tuples(st.just("truncate"), st.sampled_from(FILES), st.floats(0, 1)),
    st.tuples(st.just("binary"), st.sampled_from(FILES), st.binary(max_size=200)),
    st.tuples(st.just("splice"), st.sampled_from(FILES), st.floats(0, 1), st.text(max_size=40)),
    st.tuples(
        st.just("json"), st.sampled_from(("meta.json", "trace.json", "lines.json")), st.text(max_size=12), json_values
    ),
    st.tuples(
        st.just("cell"), st.sampled_from(("epochs.csv", "samples.csv")), st.integers(0, 40), st.text(max_size=30)
    ),
    st.tuples(st.just("directory"), st.sampled_from(FILES)),
    st.tuples(st.just("dev-zero"), st.sampled_from(FILES)),
    st.tuples(st.just("delete"), st.sampled_from(FILES)),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good traced run of 12 epochs that leaks 1 MiB an epoch, with a trace.json and timed samples."""
    root = tmp_path_factory.mktemp("template")
    trace = {
        "schema_version": 1,
        "final": True,
        "baseline_epoch": 2,
        "final_epoch": 12,
        "heap_baseline_bytes": 1000,
        "heap_final_bytes": 9000,
        "sites": [
            {
                "file": "loop.py",
                "line": 3,
                "size_diff": 8000,
                "count_diff": 10,
                "size": 9000,
                "count": 12,
                "stack": ["loop.py:3"],
            }
        ],
        "types": [{"type": "list", "count_diff": 10, "count": 12}],
        "keepers": [{"file": "loop.py", "line": 3, "holder": None, "chain": ["list", "Loop.kept"]}],
    }
    samples = [records.Sample(0.01 * i, 100 * MIB + i * 1000, 1 + i // 10) for i in range(120)]
    rss = [100 * MIB + epoch * MIB for epoch in range(12)]
    lines = line_profile([line_row(3, MIB, 10), line_row(4, 0, 10)])
    heap = [epoch * 1024 for epoch in range(12)]
    return write_run(root, "run", rss, heap=heap, samples=samples, trace_json=trace, lines_json=lines)


def apply(run: Path, damage: tuple[Any, ...]) -> None:
    """Break ``run`` in one way."""
    kind, name = damage[0], damage[1]
    path = run / name
    if kind == "delete" or kind in ("directory", "dev-zero"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        if kind == "directory":
            path.mkdir()
        elif kind == "dev-zero":
            os.symlink("/dev/zero", path)
        return
    if not path.is_file():
        return  # an earlier damage removed it
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: int(len(data) * damage[2])])
    elif kind == "binary":
        path.write_bytes(damage[2])
    elif kind == "splice":
        at = int(len(data) * damage[2])
        path.write_bytes(data[:at] + damage[3].encode() + data[at:])
    elif kind == "json":
        try:
            document = json.loads(data)
        except ValueError:
            return
        if isinstance(document, dict):
            key = damage[2] if damage[2] else next(iter(document), "x")
            document[key] = damage[3]
            path.write_text(json.dumps(document))  # NaN and infinities included: strict readers must refuse them
    elif kind == "cell":
        lines = data.decode(errors="replace").split("\n")
        row = min(damage[2] // 8, len(lines) - 1)
        cells = lines[row].split(",")
        cells[damage[2] % len(cells)] = damage[3].replace("\n", " ")
        lines[row] = ",".join(cells)
        path.write_text("\n".join(lines))


def damaged_copy(template: Path, where: Path, damage_list: list[tuple[Any, ...]]) -> Path:
    if where.exists():
        shutil.rmtree(where)
    run = where / "run"
    shutil.copytree(template, run)
    for damage in damage_list:
        apply(run, damage)
    return run


def refusal(run: Path) -> str:
    """Why the loader refuses ``run``; empty when it loads."""
    try:
        storage.load_run(run)
    except UsageError as exc:
        return str(exc)
    return ""


def assert_result_or_one_line(code: int, err: str) -> None:
    assert code in (0, 1, 2), code
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("leakbench: error: ")]
    assert (code == 2) == bool(errors), err
    assert len(errors) <= 1, err


@FUZZ
@given(damage_list=st.lists(damages, min_size=1, max_size=3))
def test_readers_give_a_result_or_one_line(
    template: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], damage_list: list
) -> None:
    run = damaged_copy(template, tmp_path_factory.getbasetemp() / "fuzz", damage_list)
    started = time.monotonic()
    # The loader: a Run or a UsageError of one line, nothing else.
    assert "\n" not in refusal(run)
    # The text commands, as the CLI runs them.
    exported = str(tmp_path_factory.getbasetemp() / "fuzz.dat")
    commands = (["explain", str(run)], ["check", str(run)], ["compare", str(run), str(run)])
    for args in (*commands, ["export", "--mprof", str(run), "-o", exported]):
        code = main(args)
        assert_result_or_one_line(code, capsys.readouterr().err)
    assert time.monotonic() - started < SECONDS_PER_EXAMPLE


@settings(FUZZ, max_examples=20)
@given(damage_list=st.lists(damages, min_size=1, max_size=3))
def test_report_gives_a_result_or_one_line(
    template: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], damage_list: list
) -> None:
    where = tmp_path_factory.getbasetemp() / "fuzz-report"
    run = damaged_copy(template, where, damage_list)
    started = time.monotonic()
    # Named directly (must load or be one line), and inside a results directory (left out with a note).
    for args in (["report", str(run), "--out", str(where / "r1")], ["report", str(where), "--out", str(where / "r2")]):
        code = main(args)
        assert_result_or_one_line(code, capsys.readouterr().err)
    assert time.monotonic() - started < 2 * SECONDS_PER_EXAMPLE
