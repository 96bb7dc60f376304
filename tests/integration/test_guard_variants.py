"""This project guards itself with its own plugin: every fixed variant within budget, every leak caught.

The budgets live in pyproject.toml under ``[tool.leakbench.budgets]`` (one entry
per variant and one per leak, e.g. ``numpy`` and ``"numpy:history"``); the
guard tests are generated from them, and a completeness test makes sure that
every registered variant and every leak it declares has its entry.
"""

from __future__ import annotations

import importlib.util

import pytest

from harness.guard.budgets import BudgetTable
from harness.loops import OPTIONAL, describe_variant, registered_variants
from harness.pytest_plugin import config_budgets

# Pure Python variants take 1-3 s per epoch, and torch takes seconds to import: their runs are slow.
SLOW_VARIANTS = {"lists", "generators", "torch"}


def _marks(variant: str) -> list[pytest.MarkDecorator]:
    """Slow for the slow variants; skipped when an optional variant's framework is not installed."""
    marks = [pytest.mark.slow] if variant in SLOW_VARIANTS else []
    needed = OPTIONAL.get(variant)
    if needed is not None and importlib.util.find_spec(needed) is None:
        marks.append(pytest.mark.skip(reason=f"{variant} needs {needed}: pip install '.[{needed}]'"))
    return marks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One guard test per budgets entry naming a registered variant (the table the plugin reads)."""
    if "guarded" not in metafunc.fixturenames:
        return
    names = registered_variants()
    cases = []
    for key in config_budgets(metafunc.config).entries:
        variant, _, leak = key.partition(":")
        if variant in names:
            cases.append(pytest.param(variant, leak or None, marks=_marks(variant), id=key))
    metafunc.parametrize(("guarded", "leak"), cases)


def test_variant_is_within_budget_or_its_leak_is_caught(leakbench_guard, guarded: str, leak: str | None) -> None:
    # GIVEN a variant, with or without one of its leaks, and its entry in [tool.leakbench.budgets]
    # WHEN the plugin runs it in a worker for the entry's epochs
    judgement = leakbench_guard(guarded, leak=leak)
    # THEN the guard has not failed the test: a fixed variant stayed within its budget, a leak was caught
    assert judgement.ok
    if leak is not None:
        assert judgement.caught_by in ("verdict", "memory cap", "max-peak", "max-growth")


@pytest.mark.parametrize(
    "variant",
    [pytest.param(name, marks=_marks(name)) for name in registered_variants()],
)
def test_every_variant_and_leak_has_a_budget(leakbench_budgets: BudgetTable, variant: str) -> None:
    # GIVEN a registered variant and the leaks it declares
    info = describe_variant(variant, registered_variants()[variant])
    assert info.available, info.error
    # THEN the table holds a growth budget for the fixed variant and expects each leak to be caught
    source = leakbench_budgets.source or "pyproject.toml"
    missing = [
        key for key in [variant, *(f"{variant}:{name}" for name in info.leaks)] if key not in leakbench_budgets.entries
    ]
    assert not missing, f"{source} has no [tool.leakbench.budgets] entry for {', '.join(missing)}"
    fixed = leakbench_budgets.for_run(variant, None)
    assert not fixed.expects_leak and fixed.max_growth is not None, f"{variant}: a fixed variant needs a max-growth"
    for name in info.leaks:
        assert leakbench_budgets.for_run(variant, name).expects_leak, f'{variant}:{name}: expected expect = "leak"'
