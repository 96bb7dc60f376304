"""Damaged run directories (W12 of the reliability audit): every reader refuses them with one line naming the file.

Each case starts from a good run and breaks one thing, as the audit did; the
loader must raise UsageError (the CLI's one line and exit 2), never another
exception, and never read without bound.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import storage
from harness.cli import main
from harness.errors import UsageError
from tests.helpers import MIB, line_profile, line_row, write_run


def good_run(root: Path) -> Path:
    """A finished, traced and line-profiled 12-epoch run that leaks 1 MiB an epoch."""
    trace = {"schema_version": 1, "final": True, "baseline_epoch": 2, "final_epoch": 12, "sites": [], "types": []}
    rss = [100 * MIB + epoch * MIB for epoch in range(12)]
    lines = line_profile([line_row(5, MIB, 10)])
    return write_run(root, "good", rss, heap=[epoch * 1024 for epoch in range(12)], trace_json=trace, lines_json=lines)


def replace_with_directory(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return damage


def link_to_dev_zero(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        os.symlink("/dev/zero", run / name)

    return damage


def edit_meta(**fields: object) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        meta = json.loads((run / "meta.json").read_text())
        (run / "meta.json").write_text(json.dumps(meta | fields))

    return damage


def write_file(name: str, text: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_text(text)

    return damage


def huge_rss(run: Path) -> None:
    lines = (run / "epochs.csv").read_text().splitlines()
    cells = lines[2].split(",")
    cells[1] = "1" * 40
    lines[2] = ",".join(cells)
    (run / "epochs.csv").write_text("\n".join(lines) + "\n")


META_LIMIT = 16 * 1024 * 1024  # harness.storage.files.META_LIMIT, spelt out: the message names it


def oversized_meta(run: Path) -> None:
    meta = json.loads((run / "meta.json").read_text())
    meta["host"]["padding"] = "x" * (META_LIMIT + 1)
    (run / "meta.json").write_text(json.dumps(meta))


DAMAGES = {
    "epochs.csv is a directory": (replace_with_directory("epochs.csv"), "epochs.csv: it is not a regular file"),
    "meta.json is a directory": (replace_with_directory("meta.json"), "meta.json: it is not a regular file"),
    "epochs.csv links to /dev/zero": (link_to_dev_zero("epochs.csv"), "epochs.csv: it is not a regular file"),
    "samples.csv links to /dev/zero": (link_to_dev_zero("samples.csv"), "samples.csv: it is not a regular file"),
    "trace.json links to /dev/zero": (link_to_dev_zero("trace.json"), "trace.json: it is not a regular file"),
    "a 40-digit integer": (huge_rss, "column rss_bytes holds values that are not whole numbers"),
    "growth is text": (edit_meta(growth="oops"), "growth must be an object"),
    "stop is text": (edit_meta(stop="x"), "stop must be an object"),
    "growth without its numbers": (edit_meta(growth={"verdict": "leak", "bytes_per_epoch": "1"}), "bytes_per_epoch"),
    "growth with a bad verdict": (edit_meta(growth={"verdict": 3}), "growth.verdict must be one of"),
    "a script named by a number": (
        edit_meta(script={"path": 5, "module": None, "args": []}, epochs_from="marks"),
        "script must name a path or a module",
    ),
    "a script's arguments as one text": (
        edit_meta(script={"path": "train.py", "module": None, "args": "--lr 1"}, epochs_from="marks"),
        "script.args must be a list of text",
    ),
    "trace.json is a list": (write_file("trace.json", "[1]"), "trace.json must be an object"),
    "trace.json sites are text": (
        write_file("trace.json", '{"schema_version": 1, "sites": "x", "types": 3, "keepers": null}'),
        "sites must be a list",
    ),
    "trace.json keepers hold numbers": (write_file("trace.json", '{"keepers": [1]}'), "keepers must be a list of"),
    "lines.json links to /dev/zero": (link_to_dev_zero("lines.json"), "lines.json: it is not a regular file"),
    "lines.json lines are text": (
        write_file("lines.json", '{"schema_version": 1, "baseline_epoch": 2, "epochs": 3, "lines": "x"}'),
        "lines.json lines must be a list",
    ),
    "NaN in lines.json": (
        write_file("lines.json", '{"schema_version": 1, "epochs": 3, "reading_cost_us": NaN}'),
        "NaN is not valid JSON",
    ),
    "lines.json of a newer schema": (write_file("lines.json", '{"schema_version": 2}'), "schema_version 2"),
    "lines.json with a rate as text": (
        write_file("lines.json", json.dumps(line_profile([line_row(5, MIB, 10) | {"kept_per_epoch": "1 MiB"}]))),
        "lines[0].kept_per_epoch must be a finite number",
    ),
    "NaN in meta.json": (write_file("meta.json", '{"schema_version": 1, "seed": NaN}'), "NaN is not valid JSON"),
    "meta.json over its limit": (oversized_meta, "over the 16,777,216-byte limit"),
}


@pytest.fixture(params=list(DAMAGES), ids=list(DAMAGES))
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A run broken in one way, and a part of the one line that must say why."""
    damage, message = DAMAGES[request.param]
    run = good_run(tmp_path / "runs")
    damage(run)
    return run, message


def test_the_good_run_loads(tmp_path: Path) -> None:
    # GIVEN the run every case starts from WHEN loaded THEN it is whole
    run = storage.load_run(good_run(tmp_path))
    assert len(run.epochs) == 12 and run.trace is not None and run.meta["status"] == "completed"
    assert run.lines is not None and run.lines["lines"][0]["kept_per_epoch"] == MIB


def test_loading_a_damaged_run_is_one_usage_error_naming_why(damaged: tuple[Path, str]) -> None:
    run, message = damaged
    # WHEN it is loaded THEN it is a UsageError (nothing else) whose one line says why
    with pytest.raises(UsageError) as caught:
        storage.load_run(run)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("command", ["explain", "check", "report", "compare"])
def test_every_reader_refuses_a_damaged_run_named_directly(
    damaged: tuple[Path, str], command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, message = damaged
    args = {
        "explain": [str(run)],
        "check": [str(run)],
        "report": [str(run), "--out", str(tmp_path / "report")],
        "compare": [str(run), str(run)],
    }[command]
    # WHEN the command is given the damaged run THEN it exits 2 with one line on stderr saying why
    assert main([command, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("leakbench: error: ") and message in err and len(err.splitlines()) == 1


def test_report_and_compare_leave_a_damaged_run_out_of_a_set_with_a_note(
    damaged: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, message = damaged
    # GIVEN a results directory holding the damaged run beside a good one
    results = run.parent
    other = good_run(tmp_path / "other")
    other.rename(results / "also-good")
    # WHEN the directory is reported, and compared with the good run alone
    assert main(["report", str(results), "--out", str(tmp_path / "report")]) == 0
    report_err = capsys.readouterr().err
    assert main(["compare", str(results), str(results / "also-good")]) == 0
    compare_err = capsys.readouterr().err
    # THEN both succeed on the good run and say, in a note, which run was left out and why
    for err in (report_err, compare_err):
        notes = [line for line in err.splitlines() if line.startswith("leakbench: note: left out: ")]
        assert len(notes) == 1 and message in notes[0], err


def test_a_file_over_its_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from harness.storage import files

    assert files.META_LIMIT == META_LIMIT
    # GIVEN a file of exactly its limit WHEN read THEN it is read; one byte more is refused before reading
    path = tmp_path / "t.csv"
    path.write_text("x" * 100)
    assert files.read_text(path, 100) == "x" * 100
    path.write_text("x" * 101)
    with pytest.raises(UsageError, match="101 bytes, over the 100-byte limit"):
        files.read_text(path, 100)
