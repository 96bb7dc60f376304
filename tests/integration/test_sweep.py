"""`python -m harness sweep` end to end in a subprocess: runs, resumes, reports; then compare on its runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report import run_table
from harness.storage import load_runs
from tests.helpers import TINY_SWEEP, cli


@pytest.mark.slow
def test_a_real_sweep_end_to_end_then_resumed_then_reported(tmp_path: Path) -> None:
    # GIVEN a tiny spec: numpy, 2 seeds, 20 epochs, and a numpy history-leak run
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SWEEP.read_text())
    command = ["sweep", spec, "--results", "runs", "--report", "report"]
    # WHEN it is swept the way a user does, in a subprocess
    first = cli(*command, cwd=tmp_path, timeout=300)
    # THEN every run finished, the report was written, and the leak run was judged a leak
    assert first.returncode == 0, first.stderr
    assert "[3/3] numpy history s0, 20 epochs: completed" in first.stderr
    table = run_table(load_runs([tmp_path / "runs"]))
    assert sorted(zip(table["leak"], table["verdict"])) == [
        ("history", "leak"),
        ("none", "flat"),
        ("none", "flat"),
    ]
    assert (tmp_path / "report" / "report.html").is_file() and (tmp_path / "report" / "memory.png").is_file()
    assert "| numpy | CNN | history | 0 | 20/20 | completed | leak |" in (tmp_path / "report" / "report.md").read_text()
    # WHEN the same command runs again THEN nothing is repeated
    second = cli(*command, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("already done") == 3
    assert len(list((tmp_path / "runs").glob("*/meta.json"))) == 3
    # WHEN compare sets the leak run against a fixed one with --fail-on-regression THEN it fails on growth
    fixed = next(p.parent for p in (tmp_path / "runs").glob("*noleak-s0*/meta.json"))
    leaky = next(p.parent for p in (tmp_path / "runs").glob("*history*/meta.json"))
    compared = cli("compare", fixed, leaky, "--fail-on-regression", cwd=tmp_path, timeout=60)
    assert compared.returncode == 1, compared.stderr
    assert "regression: numpy CNN none -> numpy CNN history: growth per epoch" in compared.stdout
