"""The line profiler in-process: the ledger's accounting, the profiler on real frames, and resolving --lines TARGETs.

The profiled loops here allocate with anonymous ``mmap`` (pages touched one by
one, unmapped on close), so RSS moves by exactly what they do and not by what
the C allocator happens to reuse.  The CLI and the worker are in
tests/integration/test_lines.py.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from harness import loops
from harness.errors import UsageError
from harness.worker.lines import LineProfiler, ledger, profiled_functions
from harness.worker.lines.ledger import OUTSIDE, Ledger

KIB = 1024
MIB = 1024**2
PAGE = 4096

LOOP_SOURCE = textwrap.dedent(
    """
    import mmap

    KEPT = []


    def touched(size):
        block = mmap.mmap(-1, size)
        for offset in range(0, size, mmap.PAGESIZE): block[offset] = 1
        return block


    def helper(size):
        KEPT.append(touched(size))  # LEAK
        return len(KEPT)


    class Loop:
        def train_epoch(self, epoch):
            scratch = touched(4 * 1024 * 1024)  # TEMPORARY
            helper(256 * 1024)  # CALL
            scratch.close()  # FREE
            return {"loss": 1.0}


    def epochs_from(epoch):
        kept = touched(128 * 1024)  # KEPT BY THE GENERATOR
        yield epoch
        yield from epochs_from(epoch + 1)


    class GeneratorLoop:
        def __init__(self):
            self.epochs = None

        def train_epoch(self, epoch):
            if self.epochs is None:
                self.epochs = epochs_from(epoch)
            return {"loss": float(next(self.epochs))}


    class FailingLoop:
        def train_epoch(self, epoch):
            raise ValueError("no data")
    """
)


@pytest.fixture
def loop_file(tmp_path: Path) -> Path:
    """The loops above as a user's file."""
    path = tmp_path / "leaky_loop.py"
    path.write_text(LOOP_SOURCE)
    return path


def line_of(path: Path, marker: str) -> int:
    """The line of ``path`` whose comment is ``# marker``."""
    (number,) = [i for i, text in enumerate(path.read_text().splitlines(), 1) if text.endswith(f"# {marker}")]
    return number


def profile(loop_file: Path, cls_name: str, targets: list[str], epochs: int, tmp_path: Path) -> dict:
    """Train ``cls_name`` of ``loop_file`` for ``epochs`` epochs under the profiler, as the worker does; lines.json."""
    cls = loops.resolve_class(f"{loop_file}:{cls_name}")
    profiler = LineProfiler(tmp_path / "lines.json", epochs, profiled_functions(cls, targets))
    profiler.start()
    loop = cls()
    for epoch in range(1, epochs + 1):
        profiler.call(loop.train_epoch, epoch)
        profiler.after_epoch(epoch)
    profiler.write(epochs, final=True)
    return json.loads((tmp_path / "lines.json").read_text())


def row_of(document: dict, line: int) -> dict:
    (row,) = [row for row in document["lines"] if row["line"] == line]
    return row


# -- the ledger ----------------------------------------------------------------------------------------


def test_a_fall_gives_back_the_newest_gain_of_its_size_not_simply_the_newest() -> None:
    # GIVEN a line that maps a 4 MiB temporary, a line that keeps 256 KiB, and a line that unmaps the temporary
    book = Ledger()
    temporary, leak, free = ("loop.py", 1), ("loop.py", 2), ("loop.py", 3)
    for _ in range(5):
        book.charge(temporary, 4 * MIB)
        book.charge(leak, 256 * KIB)
        book.charge(free, -4 * MIB)
        book.end_epoch()
    # THEN the leak keeps all it gained, every epoch, and the temporary nothing
    assert book.stats[leak].kept == 5 * 256 * KIB and book.stats[leak].grew_epochs == 5
    assert book.stats[temporary].kept == 0 and book.stats[temporary].increment == 20 * MIB
    assert book.stats[free].increment == -20 * MIB and book.untracked_release == 0


def test_without_a_gain_of_its_size_a_fall_gives_back_the_newest_gains() -> None:
    # GIVEN two gains and a fall that matches neither
    book = Ledger()
    older, newer = ("loop.py", 1), ("loop.py", 2)
    book.charge(older, 100 * KIB)
    book.charge(newer, 50 * KIB)
    book.charge(("loop.py", 3), -120 * KIB)
    # THEN the newest goes first, then part of the older (last in, first out)
    assert book.stats[newer].kept == 0 and book.stats[older].kept == 30 * KIB


def test_a_fall_below_every_gain_since_the_baseline_is_untracked() -> None:
    # GIVEN nothing gained since the baseline WHEN RSS falls THEN no line gives anything back
    book = Ledger()
    book.charge(("loop.py", 1), -MIB)
    assert book.untracked_release == MIB and book.stats[("loop.py", 1)].increment == -MIB


def test_a_line_grows_in_the_epochs_where_what_it_kept_rose() -> None:
    # GIVEN a cache filled once and a leak every epoch
    book = Ledger()
    cache, leak = ("loop.py", 1), ("loop.py", 2)
    for epoch in range(6):
        if epoch == 2:
            book.charge(cache, 8 * MIB)
        book.charge(leak, 64 * KIB)
        book.end_epoch()
    # THEN the cache rose in one epoch, the leak in all six; rows rank by what was kept
    assert book.stats[cache].grew_epochs == 1 and book.stats[leak].grew_epochs == 6
    rows = book.rows(10)
    assert [row["line"] for row in rows] == [1, 2]
    assert rows[1]["kept_per_epoch"] == 64 * KIB and rows[1]["increment_per_epoch"] == 64 * KIB


def test_merging_the_oldest_gains_keeps_each_line_total(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a small bound on the live gains WHEN two lines alternate gains past it
    monkeypatch.setattr(ledger, "MAX_LIVE", 10)
    book = Ledger()
    for i in range(40):
        book.charge(("loop.py", i % 2), PAGE)
    # THEN fewer entries are kept, and what each line kept is unchanged
    assert len(book.live) <= 10
    assert sum(size for key, size in book.live if key == ("loop.py", 0)) == book.stats[("loop.py", 0)].kept == 20 * PAGE


def test_outside_is_not_a_line() -> None:
    book = Ledger()
    book.charge(OUTSIDE, MIB)
    assert book.rows(10) == [] and book.outside() == {"increment_bytes": MIB, "kept_bytes": MIB}


# -- the profiler on real frames -----------------------------------------------------------------------


def test_the_leaking_helper_line_is_charged_and_the_temporary_and_the_call_are_not(
    loop_file: Path, tmp_path: Path
) -> None:
    # GIVEN a train_epoch that maps a temporary, calls a helper that keeps 256 KiB, then unmaps the temporary
    # WHEN train_epoch and the helper are profiled for 10 epochs
    document = profile(loop_file, "Loop", [f"{loop_file}:helper"], 10, tmp_path)
    # THEN the helper's line comes first, with 256 KiB an epoch in every epoch after the baseline
    first = document["lines"][0]
    assert (first["line"], first["function"]) == (line_of(loop_file, "LEAK"), "helper")
    assert first["source"] == "KEPT.append(touched(size))  # LEAK"
    assert first["kept_per_epoch"] == pytest.approx(256 * KIB, rel=0.05)
    assert first["grew_epochs"] == document["epochs"] == 8 and first["occurrences"] == 8
    # AND the temporary's line gained 4 MiB an epoch but kept none of it; the call line is not charged
    temporary = row_of(document, line_of(loop_file, "TEMPORARY"))
    assert temporary["increment_per_epoch"] == pytest.approx(4 * MIB, rel=0.05)
    assert abs(temporary["kept_bytes"]) < 64 * KIB
    assert abs(row_of(document, line_of(loop_file, "CALL"))["kept_bytes"]) < 64 * KIB
    assert row_of(document, line_of(loop_file, "FREE"))["increment_per_epoch"] == pytest.approx(-4 * MIB, rel=0.05)
    assert [f["target"] for f in document["functions"]] == ["Loop.train_epoch", f"{loop_file}:helper"]


def test_a_suspended_generator_is_followed_into_its_levels(loop_file: Path, tmp_path: Path) -> None:
    # GIVEN the seed's leak in small: one generator level per epoch, each keeping 128 KiB in a local
    document = profile(loop_file, "GeneratorLoop", [f"{loop_file}:epochs_from"], 12, tmp_path)
    # THEN the line assigning the local comes first, 128 KiB an epoch
    first = document["lines"][0]
    assert first["line"] == line_of(loop_file, "KEPT BY THE GENERATOR")
    assert first["kept_per_epoch"] == pytest.approx(128 * KIB, rel=0.1)
    # AND the tracing was handed back
    assert sys.gettrace() is None


def test_a_loop_that_raises_gets_the_trace_function_it_had_back(loop_file: Path, tmp_path: Path) -> None:
    # GIVEN a trace function already set (a debugger) and a loop that raises
    cls = loops.resolve_class(f"{loop_file}:FailingLoop")
    profiler = LineProfiler(tmp_path / "lines.json", 5, profiled_functions(cls, []))

    def debugger(frame: object, event: str, arg: object) -> None:
        return None

    previous = sys.gettrace()
    sys.settrace(debugger)
    try:
        # WHEN an epoch raises THEN the error passes through and the debugger's trace function is back
        with pytest.raises(ValueError, match="no data"):
            profiler.call(cls().train_epoch, 1)
        assert sys.gettrace() is debugger
    finally:
        sys.settrace(previous)


def test_before_its_baseline_lines_json_names_the_functions_and_no_lines(loop_file: Path, tmp_path: Path) -> None:
    cls = loops.resolve_class(f"{loop_file}:Loop")
    profiler = LineProfiler(tmp_path / "lines.json", 40, profiled_functions(cls, []))
    profiler.start()
    document = json.loads((tmp_path / "lines.json").read_text())
    assert document["final"] is False and document["epochs"] == 0 and document["lines"] == []
    assert document["baseline_epoch"] == 3 and document["final_epoch"] is None


# -- TARGETs ---------------------------------------------------------------------------------------------


def test_targets_resolve_to_the_functions_python_runs(loop_file: Path) -> None:
    # GIVEN a module function, a method, a classmethod and a file's function
    from harness.interface import RunConfig

    assert loops.resolve_function("harness.sizes:parse_size").__name__ == "parse_size"
    assert loops.resolve_function("harness.interface:RunConfig.option") is RunConfig.option
    assert loops.resolve_function("harness.interface:RunConfig.from_dict") is RunConfig.from_dict.__func__
    assert loops.resolve_function(f"{loop_file}:Loop.train_epoch").__qualname__ == "Loop.train_epoch"


def test_a_function_named_twice_is_profiled_once(loop_file: Path) -> None:
    cls = loops.resolve_class(f"{loop_file}:Loop")
    targets = [f"{loop_file}:Loop.train_epoch", f"{loop_file}:helper", f"{loop_file}:helper"]
    assert [name for name, _ in profiled_functions(cls, targets)] == ["Loop.train_epoch", f"{loop_file}:helper"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{file}:nothere", "has no attribute 'nothere'"),
        ("{file}:KEPT", "not a Python function (type list)"),
        ("{file}:Loop", "not a Python function (type type)"),
        ("{file}:Loop.nothere", "has no attribute 'nothere'"),
        ("json:loads.nothere", "has no attribute 'nothere'"),
        ("no_such_module_anywhere:f", "cannot import 'no_such_module_anywhere:f' for --lines: ModuleNotFoundError"),
        ("missing/file.py:f", "no file 'missing/file.py'"),
        ("math:sqrt", "not a Python function (type builtin_function_or_method)"),
        ("helper", "expected package.module:function or path/file.py:Class.method"),
    ],
)
def test_a_target_that_cannot_be_profiled_is_one_line_naming_it(loop_file: Path, target: str, message: str) -> None:
    spec = target.format(file=loop_file)
    with pytest.raises(UsageError) as caught:
        loops.resolve_function(spec)
    assert message in str(caught.value) and "\n" not in str(caught.value)
