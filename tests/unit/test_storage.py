"""Run directories: ids, exclusive creation, appending rows, loading back (also after a crash).

The records they hold are tested in test_records.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness import records, storage
from harness.errors import UsageError
from tests.helpers import run_meta, write_run


def meta_dict(**changes: Any) -> dict[str, Any]:
    """A valid meta.json dict as the runner writes it at the end of a run, then ``changes`` (unchecked)."""
    return run_meta() | changes


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory with three epochs and two samples, written the way the runner writes them."""
    return write_run(
        tmp_path / "results",
        rss=[1_000_000 * epoch for epoch in (1, 2, 3)],
        metrics={"loss": [1.0 / epoch for epoch in (1, 2, 3)], "accuracy": [0.5] * 3},
        samples=[records.Sample(-0.1, 500_000, 0), records.Sample(0.05, 1_500_000, 2)],
        variant="tests/fixtures/loops.py:GrowLoop",
        leak="grow",
    )


def test_run_ids_follow_the_schema() -> None:
    # GIVEN a variant given as a file path WHEN an id is made THEN it reads time-variant-leak-seed-random
    run_id = storage.new_run_id("tests/fixtures/loops.py:GrowLoop", None, 7)
    assert re.fullmatch(r"\d{8}T\d{6}-growloop-noleak-s7-[0-9a-f]{6}", run_id)
    assert storage.new_run_id("lists", "recursion", 0).split("-")[1:3] == ["lists", "recursion"]


def test_run_dirs_made_in_the_same_second_are_all_distinct(tmp_path: Path) -> None:
    # GIVEN many runs of the same variant started at once WHEN their directories are made THEN no two share one
    paths = {storage.create_run_dir(tmp_path, "lists", None, 0) for _ in range(50)}
    assert len(paths) == 50 and all(path.is_dir() for path in paths)


def test_a_clashing_id_is_replaced_not_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a random suffix that repeats once (as a simultaneous run could produce)
    suffixes = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(storage.layout.secrets, "token_hex", lambda n: next(suffixes))
    first = storage.create_run_dir(tmp_path, "lists", None, 0)
    (first / "meta.json").write_text("{}")
    # WHEN a second directory is made THEN it gets a new suffix and the first is untouched
    second = storage.create_run_dir(tmp_path, "lists", None, 0)
    assert first.name.endswith("aaaaaa") and second.name.endswith("bbbbbb")
    assert (first / "meta.json").read_text() == "{}"


def test_results_dir_under_a_file_is_refused_without_writing(tmp_path: Path) -> None:
    # GIVEN a results path below a regular file WHEN checked THEN a UsageError, and nothing is created
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="is not a directory"):
        storage.check_results_dir(blocker / "results")
    storage.check_results_dir(tmp_path / "new" / "deeper")  # creatable: fine, and still not created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_written_run_loads_back_with_typed_columns(run_dir: Path) -> None:
    # GIVEN a run written by RunWriter WHEN loaded
    run = storage.load_run(run_dir)
    # THEN metadata, epochs (nullable integer columns, metrics after the fixed ones) and samples come back
    assert run.meta["status"] == "completed" and run.trace is None
    assert list(run.epochs.columns) == [*records.EPOCH_COLUMNS, "loss", "accuracy"]
    assert run.metric_columns == ["loss", "accuracy"]
    assert run.epochs["rss_bytes"].tolist() == [1_000_000, 2_000_000, 3_000_000]
    assert str(run.epochs["rss_bytes"].dtype) == "Int64"
    assert run.epochs["heap_bytes"].isna().all()
    assert run.epochs["loss"].tolist() == pytest.approx([1.0, 0.5, 1 / 3], rel=1e-15)
    assert run.samples["t_s"].tolist() == [-0.1, 0.05] and run.samples["epoch"].tolist() == [0, 2]


def test_a_last_line_cut_off_mid_write_is_dropped(run_dir: Path) -> None:
    # GIVEN an epochs.csv whose writer died in the middle of row 4 ("4,40" could be read as rss 40)
    with open(run_dir / storage.EPOCHS, "a") as handle:
        handle.write("4,40")
    with open(run_dir / storage.SAMPLES, "a") as handle:
        handle.write("0.1,17")
    # WHEN loaded THEN the three whole rows remain and nothing invented
    run = storage.load_run(run_dir)
    assert run.epochs["epoch"].tolist() == [1, 2, 3]
    assert len(run.samples) == 2


def test_a_run_that_died_before_its_first_epoch_loads_empty(tmp_path: Path) -> None:
    # GIVEN a run directory with meta.json (status running) and a header cut off, no samples file
    path = tmp_path / "r"
    path.mkdir()
    storage.write_meta(path, meta_dict(status="running", ended_at=None, epochs_done=0))
    (path / storage.EPOCHS).write_text("epoch,rss_by")
    # WHEN loaded THEN it loads, with empty tables that still have the schema's columns
    run = storage.load_run(path)
    assert run.epochs.empty and list(run.epochs.columns) == list(records.EPOCH_COLUMNS)
    assert run.samples.empty and list(run.samples.columns) == list(records.SAMPLE_COLUMNS)


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda p: (p / "meta.json").unlink(), "is not a leakbench run directory: it has no meta.json"),
        (lambda p: (p / "meta.json").write_text("{not json"), "cannot read"),
        (lambda p: (p / "meta.json").write_text('{"run_id": "x"}'), "has no schema_version"),
        (
            lambda p: storage.write_meta(p, meta_dict(schema_version=4)),
            "has schema_version 4; this leakbench reads versions 1, 2 and 3: upgrade leakbench",
        ),
        (
            lambda p: storage.write_meta(p, meta_dict(status="exploded")),
            "not valid run metadata: status must be one of",
        ),
        (lambda p: (p / "epochs.csv").write_text("epoch,loss\n1,0.5\n"), "lacks the columns rss_bytes"),
        (
            lambda p: (p / "epochs.csv").write_text(",".join(records.EPOCH_COLUMNS) + "\n1,lots,1,,1,0.1,0.1\n"),
            "column rss_bytes holds values that are not whole numbers",
        ),
        (lambda p: (p / "trace.json").write_text("[1,"), "cannot read"),
    ],
)
def test_unreadable_runs_are_refused_with_the_reason(run_dir: Path, damage: Any, fragment: str) -> None:
    # GIVEN a run directory damaged in one way WHEN loaded THEN a one-line UsageError says what is wrong
    damage(run_dir)
    with pytest.raises(UsageError) as caught:
        storage.load_run(run_dir)
    assert fragment in str(caught.value)


def test_not_a_directory_is_refused(tmp_path: Path) -> None:
    # GIVEN a path that does not exist WHEN loaded THEN the message says what a run directory is
    with pytest.raises(UsageError, match="is not a directory; expected a run directory"):
        storage.load_run(tmp_path / "nope")


def test_meta_is_replaced_atomically_without_leftovers(run_dir: Path) -> None:
    # GIVEN a run WHEN meta.json is rewritten THEN readers see the new content and no temporary file stays
    storage.write_meta(run_dir, meta_dict(run_id=run_dir.name, epochs_done=2))
    assert json.loads((run_dir / "meta.json").read_text())["epochs_done"] == 2
    assert sorted(p.name for p in run_dir.iterdir()) == ["epochs.csv", "meta.json", "samples.csv"]


def test_find_runs_lists_only_run_directories(tmp_path: Path, run_dir: Path) -> None:
    # GIVEN a results directory with a run and an unrelated folder WHEN searched THEN only the run is found
    (run_dir.parent / "notes").mkdir()
    assert storage.find_runs(run_dir.parent) == [run_dir]
    assert storage.find_runs(tmp_path / "missing") == []
