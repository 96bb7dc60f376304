"""pytest plugin: fail a test when a training loop's memory grows per epoch beyond a budget.

Installed with leakbench (entry point ``pytest11``: ``leakbench``).  A test asks
for the ``leakbench_guard`` fixture and calls it with a training loop::

    def test_my_loop_does_not_leak(leakbench_guard):
        leakbench_guard(MyLoop, epochs=30, max_growth="64 KiB")

The loop runs for ``epochs`` epochs in a worker process, exactly as
``python -m harness run`` runs it; its RSS (or Python heap) per epoch is
analysed by :mod:`harness.growth`, and the test fails with a message such as
"RSS grew 3.1 MiB/epoch over 40 epochs (95% CI 2.9-3.3 MiB); budget 64 KiB/epoch".
A training script is guarded the same way, run to its end as ``run --script``
runs it (its epochs are its ``mark_epoch`` calls, else windows of its samples)::

    def test_train_script_does_not_leak(leakbench_guard):
        leakbench_guard(script="train.py", args=["--epochs", "30"], max_growth="64 KiB")

What a call leaves out comes from ``[tool.leakbench]`` in the project's
pyproject.toml (see :mod:`harness.guard.budgets`), then from the defaults.

With ``lines=["module:function", ...]`` (or ``lines=True`` for ``train_epoch``
alone) the run is profiled line by line as ``run --lines`` does, and a failure
names the lines whose resident memory grew most.

Command-line options: ``--leakbench-config PATH`` (another pyproject.toml),
``--leakbench-results DIR`` (keep the runs there, e.g. as CI artifacts; by
default they go to pytest's temporary directory).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.errors import UsageError
from harness.guard import (
    Budget,
    BudgetTable,
    Judgement,
    guard_loop,
    guard_script,
    load_budgets,
    loop_spec,
    script_spec,
    size_option,
)
from harness.report.lines import top_lines_summary
from harness.storage import load_run


class LeakbenchWarning(UserWarning):
    """A guarded run was within budget but its verdict was inconclusive (or another note worth seeing)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's command-line options."""
    group = parser.getgroup("leakbench", "memory growth budgets for training loops")
    group.addoption(
        "--leakbench-config",
        metavar="PATH",
        default=None,
        help="pyproject.toml whose [tool.leakbench] table holds the budgets (default: the rootdir's)",
    )
    group.addoption(
        "--leakbench-results",
        metavar="DIR",
        default=None,
        help="keep the guarded runs' directories in DIR (default: pytest's temporary directory)",
    )


def _config_path(config: pytest.Config) -> tuple[Path, bool]:
    """The pyproject.toml to read budgets from, and whether the user named it (then it must exist)."""
    given = config.getoption("leakbench_config")
    if given:
        return Path(given), True
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath, False
    return config.rootpath / "pyproject.toml", False


def config_budgets(config: pytest.Config) -> BudgetTable:
    """The session's budgets (--leakbench-config, else the rootdir's pyproject.toml); UsageError if unreadable."""
    path, required = _config_path(config)
    return load_budgets(path, required=required)


@pytest.fixture(scope="session")
def leakbench_budgets(pytestconfig: pytest.Config) -> BudgetTable:
    """The budgets of ``[tool.leakbench]`` in the project's pyproject.toml (empty when it has none)."""
    try:
        return config_budgets(pytestconfig)
    except UsageError as exc:
        pytest.fail(f"leakbench: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def leakbench_results(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where guarded runs are recorded: --leakbench-results, or a directory under pytest's basetemp."""
    given = pytestconfig.getoption("leakbench_results")
    return Path(given) if given else tmp_path_factory.mktemp("leakbench")


class Guard:
    """The callable behind the ``leakbench_guard`` fixture."""

    def __init__(self, budgets: BudgetTable, results_dir: Path, node: pytest.Item) -> None:
        self.budgets = budgets
        self.results_dir = results_dir
        self.node = node

    def __call__(
        self,
        loop: str | type | None = None,
        *,
        script: str | os.PathLike[str] | None = None,
        module: str | None = None,
        args: Sequence[str] = (),
        window: float | None = None,
        epochs: int | None = None,
        max_growth: str | int | None = None,
        max_peak: str | int | None = None,
        warmup: int | None = None,
        measure: str | None = None,
        expect: str | None = None,
        leak: str | None = None,
        seed: int = 0,
        options: Mapping[str, Any] | None = None,
        strict: bool = False,
        timeout: float | None = None,
        memory_cap: str | int | None = None,
        gc_collect: str | bool | None = None,
        lines: Sequence[str] | bool | None = None,
    ) -> Judgement:
        """Run ``loop`` (or ``script``/``module`` with ``args``) in a worker and fail the test unless it stays within
        budget; returns the judgement."""
        targets = _line_targets(lines)
        try:
            if (loop is None) == (script is None and module is None):
                raise UsageError("give the guard a loop, or a script (script='train.py' or module='pkg.train')")
            target = None if loop is not None else script_spec(script, module, args)
            if target is not None and (epochs is not None or leak is not None or seed != 0 or options):
                raise UsageError("epochs, leak, seed and options belong to a loop: a script takes its own args=[...]")
            if target is not None and targets is not None:
                raise UsageError("lines profiles a loop's train_epoch and its helpers; a script has none")
            if target is None and (args or window is not None):
                raise UsageError("args and window belong to a script (script='train.py'), not to a loop")
            spec = loop_spec(loop) if loop is not None else target.label
            given = Budget(
                max_growth=size_option("max-growth", max_growth),
                max_peak=size_option("max-peak", max_peak),
                expect=expect,
                epochs=epochs,
                warmup=warmup,
                measure=measure,
            )
            budget = given.over(self.budgets.for_run(spec, leak))
            recording = {
                "results_dir": self.results_dir,
                "strict": strict,
                "timeout_s": timeout,
                "memory_cap": memory_cap,
                "gc_collect": gc_collect,
            }
            if target is not None:
                judgement = guard_script(target, budget, window_s=window, **recording)
            else:
                judgement = guard_loop(spec, budget, leak=leak, seed=seed, options=options, lines=targets, **recording)
        except UsageError as exc:
            pytest.fail(f"leakbench: {exc}", pytrace=False)
        self.node.user_properties.append(("leakbench", f"{judgement.label}: {judgement.summary}"))
        if judgement.failures:
            message = [f"leakbench: {judgement.label}: {failure}" for failure in judgement.failures]
            if targets is not None:
                message += _growing_lines(judgement)
            message.append(f"  run: {judgement.run_dir}")
            pytest.fail("\n".join(message), pytrace=False)
        if judgement.notes:
            text = "; ".join((judgement.summary, *judgement.notes))
            warnings.warn(LeakbenchWarning(f"{judgement.label}: {text}"), stacklevel=2)
        return judgement


def _line_targets(lines: Sequence[str] | bool | None) -> list[str] | None:
    """``lines=`` as ``run --lines`` takes it: None (off), [] (train_epoch only) or the TARGETs."""
    if lines is None or lines is False:
        return None
    if lines is True:
        return []
    if isinstance(lines, str):
        return [lines]
    return list(lines)


def _growing_lines(judgement: Judgement) -> list[str]:
    """The failure message's lines naming where resident memory grew (from the run's lines.json)."""
    try:
        found = top_lines_summary(load_run(judgement.run_dir).lines, root=os.getcwd())
    except UsageError as exc:
        return [f"  lines: {exc}"]
    if not found:
        return ["  lines: no profiled line kept growing (profile the functions train_epoch calls: lines=[...])"]
    return ["  lines that kept resident memory (RSS):", *(f"    {line}" for line in found)]


@pytest.fixture
def leakbench_guard(
    leakbench_budgets: BudgetTable,
    leakbench_results: Path,
    request: pytest.FixtureRequest,
) -> Guard:
    """Call with a loop (class, "pkg.mod:Class", "file.py:Class", a registered name) or script=PATH, and budgets."""
    return Guard(leakbench_budgets, leakbench_results, request.node)
