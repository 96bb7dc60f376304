"""Fixtures shared by the test folders: unit/ (pure code in-process), integration/ (the CLI, workers,
pytester, a browser) and variants/ (the variants' numbers).  Plain helpers are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import storage
from harness.storage import Run
from tests.helpers import FIXTURE_RUNS

# tests/integration/test_pytest_plugin.py runs pytest in-process on small projects.
pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def fixture_runs() -> list[Run]:
    """Every stored fixture run (real runs, shrunk: see tests/fixtures/runs/shrink.py), loaded once per module."""
    return storage.load_runs([FIXTURE_RUNS])


@pytest.fixture
def no_project_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an empty directory, so this project's own pyproject.toml budgets do not apply."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir
