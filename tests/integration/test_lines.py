"""`run --lines` and `explain` as a user runs them: which line grows resident memory, native memory included.

Each run is the CLI in a subprocess in a temporary directory; the line profiler's accounting in-process is
in tests/unit/test_lines.py, the tables' text in tests/unit/test_explain_lines.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from harness import records, storage
from harness.report.lines import growing_lines
from tests.helpers import EXAMPLES, KIB, cli, run_dir_of

NATIVE = EXAMPLES / "native_leak.py"
NATIVE_LOOP = f"{NATIVE}:NativeLeakLoop"


def line_with(path: Path, text: str) -> int:
    """The number of the one line of ``path`` that holds ``text``."""
    (number,) = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return number


def profiled_run(tmp_path: Path, *args: str, timeout: float = 300) -> Path:
    """``run ARGS --quiet`` in tmp_path; the run directory, after checking it completed."""
    done = cli("run", *args, "--quiet", cwd=tmp_path, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return run_dir_of(done, tmp_path)


def table_rows(explained: str) -> list[str]:
    """The rows of explain's table of growing lines (empty when no line grew)."""
    rows = []
    for row in explained.split("Lines that kept resident memory", 1)[1].splitlines()[2:]:  # past title and header
        if not row.startswith("  ") or row.startswith("  RSS "):
            break
        rows.append(row)
    return rows


def test_a_helper_leaking_native_memory_is_found_at_its_malloc_line(tmp_path: Path) -> None:
    # GIVEN a user's loop whose helper mallocs 512 KiB of C memory an epoch, writes it and never frees it
    # WHEN it runs with the helper's lines profiled
    run_dir = profiled_run(
        tmp_path, "--variant", NATIVE_LOOP, "--leak", "native", "--epochs", "16", "--lines", f"{NATIVE}:helper"
    )
    # THEN the line that mallocs and writes the block is the first growing line, within 25% of 512 KiB/epoch
    malloc = line_with(NATIVE, "LIBC.malloc(size)")
    first = growing_lines(storage.load_run(run_dir).lines)[0]
    assert (Path(first["file"]), first["line"], first["function"]) == (NATIVE, malloc, "helper")
    assert first["kept_per_epoch"] == pytest.approx(512 * KIB, rel=0.25)
    # AND explain shows it first, and says the growth is not Python objects
    explained = cli("explain", run_dir, cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    rows = table_rows(explained.stdout)
    assert rows[0].split()[0].endswith(f"native_leak.py:{malloc}"), explained.stdout
    assert "block = ctypes.memset(LIBC.malloc(size), 1, size)" in rows[0]
    assert "  Not Python objects: Python's small objects grew" in explained.stdout


def test_the_fixed_loop_and_the_fixed_numpy_variant_have_no_growing_line(tmp_path: Path) -> None:
    # GIVEN the same loop with its helper freeing the block, and the numpy variant (no allocation per epoch)
    native = profiled_run(tmp_path, "--variant", NATIVE_LOOP, "--epochs", "16", "--lines", f"{NATIVE}:helper")
    numpy = profiled_run(tmp_path, "--variant", "numpy", "--epochs", "100", "--lines")
    for run_dir in (native, numpy):
        # WHEN explained THEN no line is reported as growing
        explained = cli("explain", run_dir, cwd=tmp_path)
        assert "  no line kept growing" in explained.stdout, explained.stdout
        assert growing_lines(storage.load_run(run_dir).lines) == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (f"{NATIVE}:no_such_helper", "has no attribute 'no_such_helper'"),
        (f"{NATIVE}:BLOCK", "not a Python function (type int)"),
        (f"{NATIVE}:NativeLeakLoop", "not a Python function (type type)"),
        ("no_such_package.helpers:helper", "cannot import 'no_such_package.helpers:helper' for --lines"),
    ],
    ids=["missing", "not a function", "a class", "not importable"],
)
def test_a_bad_target_is_one_line_and_exit_2_before_the_run_starts(tmp_path: Path, target: str, message: str) -> None:
    # WHEN a run names a TARGET that cannot be profiled
    done = cli("run", "--variant", NATIVE_LOOP, "--epochs", "3", "--lines", f"{NATIVE}:helper", target, cwd=tmp_path)
    # THEN it exits 2 with one line naming it, and nothing is written
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.startswith("leakbench: error: ") and message in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_lines_with_a_script_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # GIVEN a training script: it has no train_epoch for --lines to profile
    (tmp_path / "train.py").write_text("print('training')\n")
    # WHEN it is run with --lines THEN one line says so, exit 2, and nothing is written
    done = cli("run", "--lines", "--script", "train.py", cwd=tmp_path)  # after PATH, it would be the script's
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("leakbench: error: --lines profiles a loop's train_epoch")
    assert not (tmp_path / "results").exists()


LEAK_TO_THE_CAP = """
import time


class Loop:
    def __init__(self, config):
        self.kept = []

    def train_epoch(self, epoch):
        time.sleep(0.15)
        self.kept.append(b"x" * (4 << 20))  # KEEPS
        return {"loss": 1.0}
"""


def test_a_run_stopped_at_the_cap_keeps_its_last_interim_copy(tmp_path: Path) -> None:
    # GIVEN a loop keeping 4 MiB an epoch, profiled, under a cap it reaches after a few seconds
    (tmp_path / "loop.py").write_text(LEAK_TO_THE_CAP)
    done = cli(
        "run",
        "--variant",
        "loop.py:Loop",
        "--epochs",
        "500",
        "--lines",
        "--memory-cap",
        "110MiB",
        "--quiet",
        cwd=tmp_path,
    )
    # WHEN the cap stops it THEN lines.json is an interim copy that already names the keeping line
    assert done.returncode == records.EXIT_CODES[records.MEMORY_CAP], done.stderr
    lines = storage.load_run(run_dir_of(done, tmp_path)).lines
    assert lines is not None and lines["final"] is False and lines["epochs"] >= 3
    first = growing_lines(lines)[0]
    assert first["line"] == line_with(tmp_path / "loop.py", "# KEEPS")
    assert first["kept_per_epoch"] == pytest.approx(4 * 1024 * KIB, rel=0.25)


@pytest.mark.slow
def test_the_seeds_leak_is_the_line_its_keeper_points_at(tmp_path: Path) -> None:
    # GIVEN the seed's leak: each level of the epoch recursion keeps its epoch's differences in `outcomes`
    # WHEN the recursive generator's lines are profiled
    run_dir = profiled_run(
        tmp_path,
        "--variant",
        "lists",
        "--leak",
        "recursion",
        "--epochs",
        "6",
        "--lines",
        "variants.lists.model:ListsCNN._epochs_from",
    )
    # THEN the first growing line is the one assigning `outcomes` (the keeper's line), at the seed's ~23 MiB/epoch
    first = growing_lines(storage.load_run(run_dir).lines)[0]
    # the worker's own copy of the module: the checkout's, or site-packages' when installed (as CI does)
    model = Path(first["file"])
    assert model.parts[-3:] == ("variants", "lists", "model.py")
    assert first["line"] == line_with(model, "outcomes = [self._learn_batch(batch)")
    assert first["kept_per_epoch"] == pytest.approx(23.4 * 1024 * KIB, rel=0.1)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="needs numba: pip install '.[numba]'")
def test_numbas_leak_is_the_line_that_compiles_a_new_kernel(tmp_path: Path) -> None:
    # GIVEN numba's recompile leak: a new kernel closure each epoch, compiled at its first call in _update
    run_dir = profiled_run(
        tmp_path,
        "--variant",
        "numba",
        "--leak",
        "recompile",
        "--epochs",
        "20",
        "--lines",
        "variants.numba.model:NumbaCNN._update",
    )
    # THEN the first growing line is the call that compiles it, at the leak's ~0.9 MiB/epoch
    first = growing_lines(storage.load_run(run_dir).lines)[0]
    assert first["source"] == "self._epoch_step(values, grads)"
    assert 0.5 * 1024 * KIB < first["kept_per_epoch"] < 1.5 * 1024 * KIB
