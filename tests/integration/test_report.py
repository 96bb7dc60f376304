"""`python -m harness report` in a subprocess: the files it writes, and a path with no runs."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import FIXTURE_RUNS, cli


def test_the_report_command_writes_the_report_and_refuses_a_bad_path(
    tmp_path: Path,
) -> None:
    # WHEN the CLI reports on the fixtures THEN it prints the two files it wrote
    done = cli("report", FIXTURE_RUNS, "--out", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        str(tmp_path / "r" / "report.html"),
        str(tmp_path / "r" / "report.md"),
    ]
    # WHEN it is given a path that holds no runs THEN one line on stderr, exit 2
    bad = cli("report", tmp_path / "nothing", "--out", tmp_path, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "not a run directory or a results directory" in bad.stderr
