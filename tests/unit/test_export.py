"""``export --mprof`` in-process: the .dat lines mprof reads, which epochs are marked, bad input.

`mprof plot` drawing an exported run is in tests/integration/test_export.py.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from harness import records
from harness.cli import main
from harness.commands.export import marked_epochs, mprof_lines
from harness.storage import load_run
from tests.helpers import MIB, write_run

STARTED = "2026-01-01T00:00:00.000Z"
T0 = datetime.fromisoformat("2026-01-01T00:00:00+00:00").timestamp()


def three_epoch_run(root: Path, children: int = 0) -> Path:
    """Epochs of 0.01 s ending at 0.01, 0.02, 0.03 s with RSS 101, 102, 103 MiB; samples from t = -0.5 s."""
    tree = records.TreeFigures(children, children * 10 * MIB, None, None)
    samples = [
        records.Sample(-0.5, 50 * MIB, 0, tree),
        records.Sample(0.005, 100 * MIB, 1, tree),
        records.Sample(0.025, 102 * MIB, 3, tree),
    ]
    return write_run(root, "run-1", [101 * MIB, 102 * MIB, 103 * MIB], samples=samples, started_at=STARTED, leak="x")


def test_the_dat_file_has_the_samples_the_epoch_marks_and_a_title(tmp_path: Path) -> None:
    # GIVEN a run of three epochs whose first sample came 0.5 s before the first epoch
    run = load_run(three_epoch_run(tmp_path))
    # WHEN exported THEN the clock starts at the run's start (the earliest sample), MEM lines are in MiB,
    # and each epoch is a FUNC line from its start (the RSS the epoch before ended with) to its end
    zero = T0 + 0.5
    assert list(mprof_lines(run)) == [
        "CMDLINE leakbench run --variant numpy --leak x (run-1)\n",
        f"MEM 50.000000 {zero - 0.5:.4f}\n",
        f"MEM 100.000000 {zero + 0.005:.4f}\n",
        f"MEM 102.000000 {zero + 0.025:.4f}\n",
        f"FUNC epoch_1 50.000000 {zero + 0.0:.4f} 101.000000 {zero + 0.01:.4f} 0\n",
        f"FUNC epoch_2 101.000000 {zero + 0.01:.4f} 102.000000 {zero + 0.02:.4f} 0\n",
        f"FUNC epoch_3 102.000000 {zero + 0.02:.4f} 103.000000 {zero + 0.03:.4f} 0\n",
    ]


def test_the_processes_a_worker_started_are_a_child_series(tmp_path: Path) -> None:
    run = load_run(three_epoch_run(tmp_path, children=2))
    children = [line for line in mprof_lines(run, epoch_marks=0) if line.startswith(("CHLD", "FUNC"))]
    assert [line.split()[:3] for line in children] == [["CHLD", "descendants", "20.000000"]] * 3


def test_at_most_the_asked_number_of_epochs_are_marked_spread_evenly_first_and_last_in() -> None:
    assert marked_epochs([1, 2, 3], 20) == [1, 2, 3]
    assert marked_epochs(list(range(1, 101)), 5) == [1, 26, 51, 75, 100]
    assert marked_epochs(list(range(1, 101)), 1) == [100]
    assert marked_epochs(list(range(1, 101)), 0) == []


def test_export_writes_the_file_it_prints_and_refuses_what_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run WHEN exported without -o THEN ./mprofile_<run-id>.dat is written and its name printed
    run_dir = three_epoch_run(tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--mprof", str(run_dir)]) == 0
    assert capsys.readouterr().out == "mprofile_run-1.dat\n"
    assert (tmp_path / "mprofile_run-1.dat").read_text().startswith("CMDLINE ")
    # AND a directory that is not a run, an unwritable output, and no format are one line and exit 2
    assert main(["export", "--mprof", str(tmp_path)]) == 2
    assert main(["export", "--mprof", str(run_dir), "-o", str(tmp_path / "no" / "such" / "dir.dat")]) == 2
    assert main(["export", str(run_dir)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(line.startswith("leakbench: error: ") for line in errors)
    assert "is not a leakbench run directory" in errors[0] and "cannot write" in errors[1] and "--mprof" in errors[2]
