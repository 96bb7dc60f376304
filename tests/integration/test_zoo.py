"""The field zoo (tests/fixtures/zoo.py): leaks users reported in public bug trackers, judged as a user runs them.

Each leak is run untraced and traced, its fixed twin and each no-leak trap
untraced; every run is the CLI in a subprocess, at most two at once.  The
tests assert the verdict, the slope within 25 % of the arithmetic truth, the
onset of a late leak and the stop of one that saturates (within 2 epochs), and
that a traced run charges the growth to the case's ``# LEAK:`` line.  Traced
runs keep one frame (``--trace-frames 1``, the fastest and the hardest for
attribution), except the late leak: its growth starts after every point where
the tracer could still deepen its frames in a run this short.

Left out to keep this file to about a minute and a half on two busy cores:
FiguresOpen traced (a minute on its own: 2,600 figures' objects to walk),
which benchmarks/zoo_table.py runs; and the site of ThreadPoolPerEpoch traced,
whose thread-local buffers die with their threads' states in the tracer's
forked child (its keeper and the live-thread count name the pool instead).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import zoo
from tests.helpers import cli, run_dir_of

LEAKS = [case for case, truth in zoo.TRUTH.items() if truth.kind != "flat"]
FLAT = [case for case, truth in zoo.TRUTH.items() if truth.kind == "flat"]
UNTRACED_SITE = {"ThreadPoolPerEpoch:pool-per-epoch"}  # see the module docstring
NOT_TRACED = {"FiguresOpen:open-figures"}
IN_FLIGHT = 2


def _args(case: str, traced: bool) -> list[str]:
    name, _, leak = case.partition(":")
    args = ["run", "--variant", f"{zoo.PATH}:{name}", "--epochs", str(zoo.TRUTH[case].epochs), "--quiet"]
    args += ["--leak", leak] if leak else []
    if traced:
        args += ["--trace"] + ([] if zoo.TRUTH[case].onset else ["--trace-frames", "1"])
    return args


def _run(case: str, traced: bool, root: Path) -> dict[str, Any]:
    """One run: its growth dict and trace.json (None untraced), or the error it ended with."""
    cwd = root / f"{case.replace(':', '-')}-{'trace' if traced else 'plain'}"
    cwd.mkdir()
    done = cli(*_args(case, traced), cwd=cwd, timeout=300)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    run_dir = run_dir_of(done, cwd)
    trace = run_dir / "trace.json"
    meta = json.loads((run_dir / "meta.json").read_text())
    return {"growth": meta["growth"], "gc": meta.get("gc"), "trace": json.loads(trace.read_text()) if traced else None}


@pytest.fixture(scope="module")
def zoo_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], dict[str, Any]]:
    """Every run this file checks, made once, at most two at a time."""
    root = tmp_path_factory.mktemp("zoo")
    jobs = [(case, False) for case in zoo.TRUTH] + [(case, True) for case in LEAKS if case not in NOT_TRACED]
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        done = list(pool.map(lambda job: _run(*job, root), jobs))
    return dict(zip(jobs, done))


def _growth(runs: dict[tuple[str, bool], dict[str, Any]], case: str, traced: bool) -> dict[str, Any]:
    outcome = runs[(case, traced)]
    assert "error" not in outcome, outcome.get("error")
    return outcome["growth"]


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
@pytest.mark.parametrize("case", LEAKS)
def test_a_field_leak_is_caught_at_its_arithmetic_rate(zoo_runs, case: str, traced: bool) -> None:
    # GIVEN a loop built from a public bug report, with its growth worked out by arithmetic
    truth = zoo.TRUTH[case]
    if traced and case in NOT_TRACED:
        pytest.skip("run traced by benchmarks/zoo_table.py only (see the module docstring)")
    # WHEN run as a user runs it
    growth = _growth(zoo_runs, case, traced)
    # THEN a leak (from its onset) at the truth's rate within 25 %; one that saturates is flat, its stop named
    if truth.kind == "saturating":
        assert growth["verdict"] == "flat" and abs(growth["stop"]["epoch"] - truth.stop) <= 2
        assert abs(growth["stop"]["bytes_per_epoch"] - truth.bytes_per_epoch) <= 0.25 * truth.bytes_per_epoch
        return
    assert growth["verdict"] == "leak", growth["reason"]
    assert abs(growth["bytes_per_epoch"] - truth.bytes_per_epoch) <= 0.25 * truth.bytes_per_epoch
    if truth.onset is not None:
        assert abs(growth["onset"] - truth.onset) <= 2
    else:
        assert growth.get("onset") is None


@pytest.mark.parametrize("case", [c for c in LEAKS if c not in NOT_TRACED | UNTRACED_SITE])
def test_a_traced_field_leak_is_charged_to_the_users_line(zoo_runs, case: str) -> None:
    # GIVEN a traced run of a field leak WHEN its trace is read
    outcome = zoo_runs[(case, True)]
    assert "error" not in outcome, outcome.get("error")
    sites = outcome["trace"]["sites"]
    # THEN the top growing site is the case's "# LEAK:" line (native memory: tracemalloc sees nothing to charge)
    if zoo.TRUTH[case].native:
        assert outcome["growth"]["native_growth"] is True
        return
    assert (Path(sites[0]["file"]).name, sites[0]["line"]) in {("zoo.py", line) for line in zoo.leak_lines(case)}


@pytest.mark.parametrize("case", FLAT)
def test_fixed_twins_and_traps_are_flat(zoo_runs, case: str) -> None:
    # GIVEN a fixed twin or a no-leak trap (sawtooth, lazy table, closed figures at 40 epochs, metrics table)
    # WHEN run untraced with the default garbage-aware readings THEN flat, with no onset
    growth = _growth(zoo_runs, case, False)
    assert growth["verdict"] == "flat", growth["reason"]
    assert growth.get("onset") is None
    assert zoo_runs[(case, False)]["gc"]["policy"] == "auto"
