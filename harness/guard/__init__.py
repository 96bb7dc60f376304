"""Guard: memory budgets for CI, judged on recorded runs: the machinery of ``check`` and the pytest plugin.

Stage 4, beside the report.  Budgets come from ``[tool.leakbench]`` in a
pyproject.toml or from arguments (:mod:`~harness.guard.budgets`);
:mod:`~harness.guard.run` records a loop through :mod:`harness.recording`
exactly as ``run`` does; :mod:`~harness.guard.judge` applies the named checks
(status, expected leak, max-growth, max-peak, strict) to a run's growth
(:mod:`harness.growth`) and hands on a :class:`Judgement`: its failures, each
one line, or none.  The pytest plugin (:mod:`harness.pytest_plugin`) and the
``check`` command only print what a judgement says.
"""

from harness.guard.budgets import (
    DEFAULT_EPOCHS,
    EXPECTS,
    MEASURES,
    Budget,
    BudgetTable,
    budget_from_mapping,
    load_budgets,
    parse_table,
    size_option,
)
from harness.guard.judge import CHECKS, Analysed, Judgement, analyse, judge
from harness.guard.run import guard_loop, guard_script, loop_spec, script_spec

__all__ = [
    "CHECKS",
    "DEFAULT_EPOCHS",
    "EXPECTS",
    "MEASURES",
    "Analysed",
    "Budget",
    "BudgetTable",
    "Judgement",
    "analyse",
    "budget_from_mapping",
    "guard_loop",
    "guard_script",
    "judge",
    "load_budgets",
    "loop_spec",
    "parse_table",
    "script_spec",
    "size_option",
]
