"""The pytest plugin: a guarded loop passes when flat, fails with a readable message when it leaks.

Each test writes a small project with pytester and runs pytest on it in-process,
with plugin autoloading off and the plugin named with ``-p``, so the tests mean
the same whether or not the ``pytest11`` entry point is installed.
"""

from __future__ import annotations

# Imported here so that NumPy and pandas are in sys.modules before pytester snapshots it: the
# in-process runs would otherwise drop them afterwards, and NumPy cannot be imported twice.
import pandas  # noqa: F401
import pytest

# The pytester fixture comes from tests/conftest.py (pytest_plugins = ["pytester"]).

# A flat loop, one that keeps 1 MiB more every epoch, and one that keeps it as Python objects only.
LOOPS = """
class Flat:
    def __init__(self, config):
        self.buffer = bytearray(4 << 20)

    def train_epoch(self, epoch):
        scratch = bytearray(1 << 20)  # freed every epoch
        return {"loss": 1.0 / epoch + len(scratch) * 0.0}


class Grows:
    def __init__(self, config):
        self.kept = []

    def train_epoch(self, epoch):
        self.kept.append(bytearray(1 << 20))
        return {"loss": 1.0 / epoch}


def grow(kept):
    kept.append(bytearray(1 << 20))


class GrowsInAHelper(Grows):
    def train_epoch(self, epoch):
        grow(self.kept)
        return {"loss": 1.0 / epoch}
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project holding loops.py; the plugin is loaded by -p only."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(loops=LOOPS)
    return pytester


def run(project: pytest.Pytester, test_source: str) -> pytest.RunResult:
    """Write test_guarded.py and run pytest on it with the plugin."""
    project.makepyfile(test_guarded=test_source)
    # Once the entry point is installed this process has imported the plugin already: pytest then
    # warns that it cannot rewrite its asserts, which is harmless and not what these tests count.
    return project.runpytest(
        "-p",
        "harness.pytest_plugin",
        "-q",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    )


def test_flat_loop_passes(project: pytest.Pytester) -> None:
    # GIVEN a loop whose memory does not grow, imported as a class
    # WHEN a test guards it with a 64 KiB/epoch budget
    result = run(
        project,
        """
from loops import Flat

def test_flat(leakbench_guard):
    judgement = leakbench_guard(Flat, epochs=20, max_growth="64 KiB")
    assert judgement.verdict == "flat"
    assert judgement.epochs_done == 20
""",
    )
    # THEN the test passes
    result.assert_outcomes(passed=1)


def test_leaking_loop_fails_with_rate_ci_and_budget(project: pytest.Pytester) -> None:
    # GIVEN a loop that keeps 1 MiB more every epoch, named by file path
    # WHEN a test guards it with a 64 KiB/epoch budget
    result = run(
        project,
        """
def test_grows(leakbench_guard):
    leakbench_guard("loops.py:Grows", epochs=20, max_growth="64 KiB")
""",
    )
    # THEN the test fails, saying how fast it grew, with its CI, against which budget, and where the run is
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [
            (
                r"leakbench: loops\.py:Grows: RSS grew 1\.0\d? MiB/epoch over \d+ epochs "
                r"\(95% CI 1\.0-1\.0 MiB\); budget 64\.0 KiB/epoch$"
            ),
            r"\s+run: .*-grows-noleak-s0-[0-9a-f]{6}$",
        ]
    )
    # and the failure is the message alone, not a traceback into the plugin
    assert "pytest_plugin.py" not in result.stdout.str()


def test_a_failure_with_lines_names_the_line_that_kept_the_memory(project: pytest.Pytester) -> None:
    # GIVEN a loop whose helper keeps 1 MiB an epoch, guarded with the helper's lines profiled
    result = run(
        project,
        """
def test_grows(leakbench_guard):
    leakbench_guard("loops.py:GrowsInAHelper", epochs=12, max_growth="64 KiB", lines=["loops.py:grow"])
""",
    )
    # THEN the failure says how fast it grew, then which line kept it, then where the run is
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [
            r"leakbench: loops\.py:GrowsInAHelper: RSS grew 1\.0\d* MiB/epoch over 12 epochs .*; "
            r"budget 64\.0 KiB/epoch$",
            r"\s+lines that kept resident memory \(RSS\):$",
            r"\s+\+1\.0 MiB/epoch at loops\.py:\d+: kept\.append\(bytearray\(1 << 20\)\)$",
            r"\s+run: .*-growsinahelper-noleak-s0-[0-9a-f]{6}$",
        ]
    )


def test_budget_above_the_growth_passes(project: pytest.Pytester) -> None:
    # GIVEN the same 1 MiB/epoch loop and a budget of 4 MiB/epoch
    result = run(
        project,
        """
def test_grows(leakbench_guard):
    judgement = leakbench_guard("loops.py:Grows", epochs=20, max_growth="4 MiB")
    assert judgement.verdict == "leak"
    assert 0.9 * 2**20 < judgement.bytes_per_epoch < 1.1 * 2**20
""",
    )
    # THEN growth within budget passes, though the verdict is a leak
    result.assert_outcomes(passed=1)


def test_expected_leak_passes_when_caught_and_fails_when_not(
    project: pytest.Pytester,
) -> None:
    # GIVEN one test expecting the leaking loop to leak and one expecting the flat loop to
    result = run(
        project,
        """
def test_caught(leakbench_guard):
    leakbench_guard("loops.py:Grows", epochs=20, expect="leak")

def test_missed(leakbench_guard):
    leakbench_guard("loops.py:Flat", epochs=20, expect="leak")
""",
    )
    # THEN the first passes and the second fails saying what was seen instead
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["leakbench: loops.py:Flat: expected a leak, but RSS flat, * over * epochs*"])


def test_peak_budget(project: pytest.Pytester) -> None:
    # GIVEN a flat loop and a peak RSS budget far below what a Python worker needs
    result = run(
        project,
        """
def test_peak(leakbench_guard):
    leakbench_guard("loops.py:Flat", epochs=8, max_peak="1 MiB")
""",
    )
    # THEN the test fails naming the peak, the budget and the excess
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [r"leakbench: loops\.py:Flat: peak RSS [\d.]+ MiB is over the 1\.0 MiB budget by [\d.]+ MiB$"]
    )


def test_heap_measure_reports_the_python_heap(project: pytest.Pytester) -> None:
    # GIVEN the leaking loop, whose bytearrays live on the Python heap, judged on the heap
    result = run(
        project,
        """
def test_heap(leakbench_guard):
    leakbench_guard("loops.py:Grows", epochs=20, max_growth="64 KiB", measure="heap")
""",
    )
    # THEN the message names the Python heap (the run was traced)
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [r"leakbench: loops\.py:Grows: Python heap grew 1\.0\d? MiB/epoch over \d+ epochs .*budget 64\.0 KiB/epoch$"]
    )


def test_inconclusive_warns_and_fails_when_strict(project: pytest.Pytester) -> None:
    # GIVEN a flat loop run for too few epochs for a verdict
    result = run(
        project,
        """
def test_lenient(leakbench_guard):
    assert leakbench_guard("loops.py:Flat", epochs=3).verdict == "inconclusive"

def test_strict(leakbench_guard):
    leakbench_guard("loops.py:Flat", epochs=3, strict=True)
""",
    )
    # THEN the lenient test passes with a warning and the strict one fails, both saying why
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "leakbench: loops.py:Flat: RSS inconclusive, * over 3 epochs after * warm-up epochs; only 3 epochs*",
            "*LeakbenchWarning: loops.py:Flat: RSS inconclusive, * over 3 epochs after * warm-up epochs;"
            " only 3 epochs*; run more epochs for a verdict",
        ]
    )


def test_bad_size_is_one_line_quoting_the_input(project: pytest.Pytester) -> None:
    # GIVEN a budget written wrongly
    result = run(
        project,
        """
def test_bad(leakbench_guard):
    leakbench_guard("loops.py:Flat", max_growth="sixty KiB")
""",
    )
    # THEN the test fails with the size error quoting the bad input, before any run
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["leakbench: max-growth: invalid size 'sixty KiB': expected a byte count or a number with a unit*"]
    )
    assert not (project.path / "leakbench").exists()


def test_budgets_come_from_pyproject(project: pytest.Pytester) -> None:
    # GIVEN budgets in the project's pyproject.toml: the leak expected for Grows, a tight budget for Flat
    project.makepyprojecttoml("""
[tool.leakbench]
max-growth = "64 KiB"

[tool.leakbench.budgets."loops.py:Grows"]
epochs = 20
expect = "leak"

[tool.leakbench.budgets."loops.py:Flat"]
epochs = 9
""")
    # WHEN tests name the loops without any budget keyword
    result = run(
        project,
        """
def test_grows(leakbench_guard):
    assert leakbench_guard("loops.py:Grows").epochs_done == 20

def test_flat(leakbench_guard):
    assert leakbench_guard("loops.py:Flat").epochs_done == 9
""",
    )
    # THEN both pass: the expected leak is caught, and epochs come from the table
    result.assert_outcomes(passed=2)


def test_budget_options_reach_the_loop(project: pytest.Pytester) -> None:
    # GIVEN a budget entry with variant options, and a call that overrides one of them
    project.makepyprojecttoml("""
[tool.leakbench.budgets."loops.py:Flat"]
epochs = 7
options = { width = 3, note = "from the table" }
""")
    # WHEN the loop is guarded THEN its RunConfig holds the entry's options, the call's winning
    result = run(
        project,
        """
import json
from pathlib import Path

def test_flat(leakbench_guard):
    judgement = leakbench_guard("loops.py:Flat", options={"note": "from the call"})
    meta = json.loads((Path(judgement.run_dir) / "meta.json").read_text())
    assert meta["config"]["options"] == {"width": 3, "note": "from the call"}
""",
    )
    result.assert_outcomes(passed=1)


def test_malformed_pyproject_budget_names_the_key(project: pytest.Pytester) -> None:
    # GIVEN a budgets entry with a key the table does not accept
    project.makepyprojecttoml("""
[tool.leakbench.budgets.numpy]
max_growth = "16 KiB"
""")
    result = run(
        project,
        """
def test_any(leakbench_guard):
    leakbench_guard("loops.py:Flat")
""",
    )
    # THEN the test errors with the file, the entry, the key and the accepted keys
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ['*pyproject.toml [[]tool.leakbench.budgets."numpy"[]]: unknown key *max_growth*; accepted: max-growth*']
    )
