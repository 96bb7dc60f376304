"""Scripts everywhere a loop goes: the plugin (``leakbench_guard(script=...)``), budgets keyed by the script's
path, a sweep of scripts with their args and its report, the examples' own tests, and the seed as a script."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Imported before pytester snapshots sys.modules (see tests/integration/test_pytest_plugin.py).
import pandas  # noqa: F401
import pytest

from harness import storage
from tests.helpers import EXAMPLES, FIXTURES, cli, python, run_dir_of

MARKED = FIXTURES / "scripts" / "marked_leak.py"
STEADY = FIXTURES / "scripts" / "steady_leak.py"


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project holding the test scripts; the plugin is loaded by -p only."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for script in (MARKED, STEADY):
        shutil.copy(script, pytester.path / script.name)
    return pytester


def run(project: pytest.Pytester, test_source: str) -> pytest.RunResult:
    """Write test_guarded.py and run pytest on it with the plugin."""
    project.makepyfile(test_guarded=test_source)
    return project.runpytest("-p", "harness.pytest_plugin", "-q", "-W", "ignore::pytest.PytestAssertRewriteWarning")


def test_the_guard_runs_a_script_and_fails_it_with_the_rate_per_epoch(project: pytest.Pytester) -> None:
    # GIVEN a flat script and the same script keeping 1 MiB per marked epoch
    result = run(
        project,
        """
def test_flat(leakbench_guard):
    judgement = leakbench_guard(script="marked_leak.py", args=["12", "0"], max_growth="64 KiB")
    assert judgement.verdict == "flat" and judgement.epochs_done == 12

def test_grows(leakbench_guard):
    leakbench_guard(script="marked_leak.py", args=["12", "1024"], max_growth="64 KiB")
""",
    )
    # THEN the flat one passes and the leaking one fails, named by its path, with its rate per epoch
    # (1.0, 1.004 or 1.01 MiB/epoch: the allocator's rounding decides the last digits)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines(
        [r"leakbench: marked_leak\.py: RSS grew 1\.0\d* MiB/epoch over \d+ epochs .*budget 64\.0"]
    )


def test_budgets_are_keyed_by_the_scripts_path_and_windows_judge_an_unmarked_one(project: pytest.Pytester) -> None:
    # GIVEN a pyproject.toml whose budget for steady_leak.py expects its leak
    project.makefile(
        ".toml",
        pyproject='[tool.leakbench.budgets."steady_leak.py"]\nexpect = "leak"\n',
    )
    result = run(
        project,
        """
def test_steady(leakbench_guard):
    judgement = leakbench_guard(script="steady_leak.py", args=["1", "8"])
    assert judgement.verdict == "leak" and judgement.growth["per"] == "window"
""",
    )
    # THEN the unmarked script's leak is caught per window, as its budget expects
    result.assert_outcomes(passed=1)


def test_the_guard_refuses_what_belongs_to_the_other_kind(project: pytest.Pytester) -> None:
    result = run(
        project,
        """
def test_epochs_for_a_script(leakbench_guard):
    leakbench_guard(script="marked_leak.py", epochs=3)

def test_args_for_a_loop(leakbench_guard):
    leakbench_guard("numpy", args=["x"])

def test_nothing(leakbench_guard):
    leakbench_guard()
""",
    )
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*leakbench: epochs, leak, seed and options belong to a loop: a script takes its own args=[[]...[]]*",
            "*leakbench: args and window belong to a script (script='train.py'), not to a loop*",
            "*leakbench: give the guard a loop, or a script (script='train.py' or module='pkg.train')*",
        ]
    )


def test_a_sweep_of_scripts_runs_resumes_and_reports(tmp_path: Path) -> None:
    # GIVEN a spec with one script and two argument lists
    shutil.copy(MARKED, tmp_path / "marked_leak.py")
    (tmp_path / "scripts.toml").write_text(
        '[[runs]]\nscripts = ["marked_leak.py"]\nargs = [["8", "0"], ["8", "512"]]\n'
    )
    command = ["sweep", "scripts.toml", "--results", "runs", "--report", "report"]
    # WHEN swept, then swept again
    first = cli(*command, cwd=tmp_path, timeout=300)
    second = cli(*command, cwd=tmp_path, timeout=300)
    # THEN both runs completed once, the second sweep repeated neither, and the report has them
    assert first.returncode == 0, first.stderr
    assert "[2/2] marked_leak.py 8 512: completed" in first.stderr
    assert second.returncode == 0 and second.stderr.count("already done") == 2
    metas = [storage.read_meta(p.parent) for p in (tmp_path / "runs").glob("*/meta.json")]
    assert sorted(m["script"]["args"][1] for m in metas) == ["0", "512"]
    table = (tmp_path / "report" / "report.md").read_text()
    assert "| marked_leak.py | script | none | - | 8 | completed | leak |" in table


@pytest.mark.slow
def test_the_seed_as_a_script_leaks_as_the_class_does(tmp_path: Path) -> None:
    # GIVEN the seed's pre-fix recursion as the lists class and as a plain script that marks its epochs
    epochs = "6"
    loop = cli("run", "--variant", "lists", "--leak", "recursion", "--epochs", epochs, cwd=tmp_path, timeout=600)
    script = cli(
        "run",
        "--script",
        EXAMPLES / "seed_script.py",
        "--",
        "--recursion",
        "--epochs",
        epochs,
        cwd=tmp_path,
        timeout=600,
    )
    assert loop.returncode == 0 and script.returncode == 0, loop.stderr + script.stderr
    a, b = (storage.load_run(run_dir_of(done, tmp_path)) for done in (loop, script))
    # THEN the same verdict, the same growth per epoch within 5%, and the same numbers epoch by epoch
    assert a.meta["growth"]["verdict"] == b.meta["growth"]["verdict"] == "leak"
    assert b.meta["growth"]["bytes_per_epoch"] == pytest.approx(a.meta["growth"]["bytes_per_epoch"], rel=0.05)
    for metric in ("loss", "accuracy", "correct_prob"):
        assert b.epochs[metric].tolist() == pytest.approx(a.epochs[metric].tolist(), abs=1e-12)


def examples_project(root: Path, *names: str) -> Path:
    """The named examples copied into a project of their own, as a user would have them."""
    root.mkdir()
    for name in names:
        shutil.copy(EXAMPLES / name, root / name)
    return root


def run_pytest(project: Path) -> tuple[int, str]:
    """Plain ``python -m pytest`` in the project (the plugin from its entry point), as the user runs it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    done = python("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, env=env, timeout=600)
    return done.returncode, done.stdout + done.stderr


def test_the_numpy_script_example_is_guarded_and_its_leak_line_caught(tmp_path: Path) -> None:
    # GIVEN the NumPy training script and its test in a project of their own
    project = examples_project(tmp_path / "project", "train_numpy.py", "test_train_numpy.py")
    # WHEN the user runs pytest THEN the script stays within its budget
    code, output = run_pytest(project)
    assert code == 0 and "1 passed" in output, output
    # AND with its commented-out leak line switched on, the same test fails naming the script and the rate
    source = (project / "train_numpy.py").read_text()
    leak = "        # history.append(predictions)\n"
    assert leak in source, "examples/train_numpy.py lost its commented-out leak line"
    (project / "train_numpy.py").write_text(source.replace(leak, leak.replace("# ", "", 1)))
    code, output = run_pytest(project)
    assert code == 1 and "leakbench: train_numpy.py: RSS grew 320." in output, output


def test_the_torch_script_example_is_guarded_and_its_leak_caught(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the PyTorch script example needs torch: pip install '.[torch]'")
    project = examples_project(tmp_path / "project", "train_torch.py", "test_train_torch.py")
    code, output = run_pytest(project)
    assert code == 0 and "2 passed" in output, output
