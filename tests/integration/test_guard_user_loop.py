"""A user's own loop guarded exactly as the README says: examples/ copied into a fresh project, plain ``pytest``.

No ``-p`` option and no conftest: the fixture must come from the installed
``pytest11`` entry point, as it does for a user who ran ``pip install leakbench``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, python

LEAK_LINE = "        # self.history.append(predictions)\n"


def test_plugin_is_installed_as_a_pytest11_entry_point() -> None:
    # GIVEN leakbench installed: its distribution's pytest11 entry points
    targets = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    # THEN one of them is the plugin module (else: add it to pyproject.toml and reinstall)
    assert targets.get("leakbench") == "harness.pytest_plugin", (
        "no pytest11 entry point 'leakbench = \"harness.pytest_plugin\"'; add [project.entry-points.pytest11] "
        "to pyproject.toml and reinstall (pip install -e .)"
    )


def user_project(root: Path, leak: bool) -> Path:
    """A user's project: examples/my_loop.py (its leak line uncommented when ``leak``) and its test."""
    source = (EXAMPLES / "my_loop.py").read_text()
    assert LEAK_LINE in source, "examples/my_loop.py lost its commented-out leak line, which the README shows"
    if leak:
        source = source.replace(LEAK_LINE, LEAK_LINE.replace("# ", "", 1))
    root.mkdir()
    (root / "my_loop.py").write_text(source)
    shutil.copy(EXAMPLES / "test_my_loop.py", root / "test_my_loop.py")
    return root


def run_pytest(project: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in the project, as the user runs it, with no leakbench options from our environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return python("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, env=env)


def test_user_loop_is_guarded_and_passes(tmp_path: Path) -> None:
    # GIVEN the README's loop and test in a project of their own
    project = user_project(tmp_path / "project", leak=False)
    # WHEN the user runs pytest
    result = run_pytest(project)
    # THEN the guarded test passes
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_user_loop_with_its_leak_fails_with_the_readme_message(tmp_path: Path) -> None:
    # GIVEN the same loop keeping every epoch's 4096 x 10 float64 predictions (320 KiB)
    project = user_project(tmp_path / "project", leak=True)
    # WHEN the user runs pytest
    result = run_pytest(project)
    # THEN the test fails with the rate, its CI and the budget, as the README shows
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    message = next(
        (line for line in lines if line.startswith("leakbench: my_loop.py:MyLoop: ")),
        "",
    )
    assert message.startswith("leakbench: my_loop.py:MyLoop: RSS grew 320."), result.stdout
    assert message.endswith(" KiB); budget 64.0 KiB/epoch"), message


def test_the_dataloader_example_guards_its_workers_on_the_tree(tmp_path: Path) -> None:
    # GIVEN the PyTorch DataLoader example and its test in a project of their own (torch installed)
    pytest.importorskip("torch", reason="the DataLoader example needs torch: pip install '.[torch]'")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("torch_dataloader.py", "test_torch_dataloader.py"):
        shutil.copy(EXAMPLES / name, project / name)
    # WHEN the user runs pytest
    result = run_pytest(project)
    # THEN the fixed loader stays under its tree-PSS peak and the copy-on-read leak is caught by it
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
