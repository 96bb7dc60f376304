"""A sweep spec's ``measure``: passed to each run as --measure, and checked when the spec is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.sweep.spec import parse_spec


def test_a_groups_measure_reaches_each_run_and_a_bad_one_is_refused() -> None:
    # GIVEN a group judged on the tree's PSS and one with the default
    spec = parse_spec(
        {"runs": [{"variants": ["numpy"], "epochs": 3, "measure": "tree-pss"}, {"variants": ["numpy"], "epochs": 3}]},
        "mine",
    )
    # WHEN expanded THEN the first run's command line carries --measure, the second none
    first, second = (run.argv(Path("results")) for run in spec.runs)
    assert first[first.index("--measure") + 1] == "tree-pss" and "--measure" not in second
    # AND an unknown measure is refused when the spec is read, naming it
    with pytest.raises(UsageError, match="measure must be one of rss, tree-pss, tree-uss, heap, got 'pss'"):
        parse_spec({"runs": [{"variants": ["numpy"], "measure": "pss"}]}, "bad")
