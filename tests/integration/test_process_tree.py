"""Loops that start processes, run as a user runs them: the cap on the whole tree, nothing left alive, Ctrl-Z.

Every run gets an environment variable with a tag of its own; every process it
starts inherits it, so after the run ends a scan of /proc/*/environ finds any
process of the run still alive, whatever session or process group it moved to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness import storage
from tests.helpers import TAG, survivors, tagged

LOOPS = Path(__file__).parent.parent / "fixtures" / "tree_loops.py"
MiB = 1024 * 1024
INTERVAL = 0.05  # the default sample interval
# The machine is shared and loaded: a sample can be late by a few intervals' worth of scheduling.
SCHEDULING_SLACK_S = 0.25


def loop(name: str) -> str:
    return f"{LOOPS}:{name}"


def start(*args: str, cwd: Path, tag: str) -> subprocess.Popen[str]:
    """``python -m harness ARGS`` in ``cwd``, its processes tagged with ``tag``."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        env=os.environ | {TAG: tag},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_dir_of(out: str, cwd: Path) -> Path:
    path = Path(out.strip().splitlines()[-1])
    return path if path.is_absolute() else cwd / path


def log_lines(path: Path) -> list[tuple[str, float, str]]:
    """The loop's log: (event, time.monotonic(), value) per line."""
    if not path.exists():
        return []
    return [
        (name, float(t), value) for name, t, value in (line.split(" ", 2) for line in path.read_text().splitlines())
    ]


def wait_for(path: Path, event: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(name == event for name, _, _ in log_lines(path)):
        assert time.monotonic() < deadline, f"no {event!r} in {path} after {timeout_s} s"
        time.sleep(0.05)


# -- the cap applies to the tree -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["subprocess", "setsid", "fork"])
def test_a_child_allocating_1_gib_is_stopped_within_a_sample_of_passing_the_cap(tmp_path: Path, mode: str) -> None:
    # GIVEN a loop whose child (a new Python, one in a session of its own, or a fork) allocates 1 GiB
    # in 8 MiB steps, logging its RSS after each, under a 300 MiB cap
    cap, log, tag = 300 * MiB, tmp_path / "log", uuid.uuid4().hex
    options = ["--option", f"mode={mode}", "--option", f"log={log}", "--option", "mib=1024"]
    proc = start(
        "run",
        "--variant",
        loop("ChildAlloc"),
        *options,
        "--epochs",
        "200",
        "--memory-cap",
        "300MiB",
        cwd=tmp_path,
        tag=tag,
    )
    out, err = proc.communicate(timeout=120)
    # THEN the run stops at the cap, the child being the tree's memory, far below its 1 GiB
    assert proc.returncode == 3, err
    assert err.startswith("memory_cap: stopped after epoch ") and "the worker and 1 child) passed the cap" in err
    run = storage.load_run(run_dir_of(out, tmp_path))
    stop = run.meta["stop"]
    assert run.meta["status"] == "memory_cap" and stop["children"] == 1
    assert cap < stop["tree_pss_bytes"] < cap + 150 * MiB
    # AND the sample that stopped it came within a sample interval of the tree passing the cap. When
    # the tree passed, the worker's PSS plus the child's RSS (an upper bound of its PSS) had passed it.
    events = log_lines(log)
    t0 = next(t for name, t, _ in events if name == "epoch1")  # the loop's first epoch starts the clock
    alone = run.samples.loc[run.samples["children"] == 0, "tree_pss_bytes"].dropna()
    worker = int(alone.max()) if len(alone) else int(run.epochs["tree_pss_bytes"].dropna().iloc[0])
    passed = next(t for name, t, value in events if name == "child_rss" and worker + int(value) > cap)
    stopped = t0 + float(run.samples["t_s"].iloc[-1])  # the last sample is the one over the cap
    assert stopped - passed <= INTERVAL + SCHEDULING_SLACK_S
    assert run.samples["tree_pss_bytes"].iloc[-1] == stop["tree_pss_bytes"]
    # AND no process of the run is alive afterwards
    assert survivors(tag) == []


# -- nothing of a run outlives it -----------------------------------------------------------------

ENDS = {
    # end: (loop's end option, extra run options, how the test ends it, run's exit code, status)
    "completed": ("complete", ["--epochs", "5"], None, 0, "completed"),
    "failed-raise": ("raise", ["--epochs", "5"], None, 5, "failed"),
    "failed-exit": ("exit", ["--epochs", "5"], None, 5, "failed"),
    "timeout": ("slow", ["--epochs", "500", "--timeout", "3"], None, 4, "timeout"),
    "interrupted": ("slow", ["--epochs", "500"], signal.SIGINT, 130, "interrupted"),
    "memory_cap": ("grow", ["--epochs", "500", "--memory-cap", "400MiB"], None, 3, "memory_cap"),
    "keeper-killed": ("killkeeper", ["--epochs", "500"], None, 5, "failed"),
    "run-sigkilled": ("slow", ["--epochs", "500"], signal.SIGKILL, -9, "running"),
}


@pytest.mark.parametrize("end", list(ENDS))
def test_no_process_the_run_started_survives_its_end(tmp_path: Path, end: str) -> None:
    # GIVEN a loop that starts five children in epoch 1: a subprocess, one in its own session, a
    # multiprocessing fork, a fork ignoring SIGTERM, and an orphaned grandchild, all sleeping for minutes
    option, extra, signum, code, status = ENDS[end]
    log, tag = tmp_path / "log", uuid.uuid4().hex
    proc = start(
        "run",
        "--variant",
        loop("Leftovers"),
        "--option",
        f"end={option}",
        "--option",
        f"log={log}",
        *extra,
        "--results",
        str(tmp_path / "results"),
        cwd=tmp_path,
        tag=tag,
    )
    wait_for(log, "children")
    if option == "slow":  # the scan sees them all while they live: run, keeper, trainer and the five
        assert len(tagged(tag)) >= 8
    # WHEN the run ends that way
    if signum is not None:
        time.sleep(0.3)
        proc.send_signal(signum)
    proc.communicate(timeout=120)
    # THEN its exit code and status say so
    assert proc.returncode == code
    (run_dir,) = (tmp_path / "results").iterdir()
    assert json.loads((run_dir / "meta.json").read_text())["status"] == status
    # AND no process it started is alive, even the ones in their own session or orphaned
    assert survivors(tag) == []


def test_a_pool_left_open_ends_with_the_run(tmp_path: Path) -> None:
    # GIVEN a loop with a fork-based multiprocessing Pool it never closes
    log, tag = tmp_path / "log", uuid.uuid4().hex
    proc = start("run", "--variant", loop("PoolLoop"), "--option", f"log={log}", "--epochs", "5", cwd=tmp_path, tag=tag)
    # WHEN it runs THEN it completes, exit 0, within 2 s of its last epoch, and the pool's processes are gone
    out, err = proc.communicate(timeout=60)
    ended = time.monotonic()
    assert proc.returncode == 0, err
    assert out.startswith("completed 5/5 epochs")
    last_epoch = next(t for name, t, _ in log_lines(log) if name == "last_epoch_end")
    assert ended - last_epoch < 2.0
    assert survivors(tag) == []


@pytest.mark.slow
def test_a_pool_left_open_ends_with_the_run_20_times_in_20(tmp_path: Path) -> None:
    # GIVEN the same loop WHEN run 20 times THEN every run completes within 2 s of its last epoch
    lags = []
    for trial in range(20):
        log, tag = tmp_path / f"log{trial}", uuid.uuid4().hex
        proc = start(
            "run", "--variant", loop("PoolLoop"), "--option", f"log={log}", "--epochs", "5", cwd=tmp_path, tag=tag
        )
        _, err = proc.communicate(timeout=60)
        lags.append(time.monotonic() - next(t for name, t, _ in log_lines(log) if name == "last_epoch_end"))
        assert proc.returncode == 0, err
        assert survivors(tag) == []
    assert max(lags) < 2.0, lags


def test_forked_children_get_default_handlers_and_not_the_record_pipe(tmp_path: Path) -> None:
    # GIVEN a loop that forks a child reporting what it inherited WHEN run
    log = tmp_path / "log"
    proc = start(
        "run",
        "--variant",
        loop("ForkReport"),
        "--option",
        f"log={log}",
        "--epochs",
        "2",
        cwd=tmp_path,
        tag=uuid.uuid4().hex,
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    found = {name: value for name, _, value in log_lines(log)}
    # THEN SIGTERM kills it and SIGINT raises KeyboardInterrupt, as in any Python, and the pipe is not its
    assert found == {"sigterm": str(int(signal.SIG_DFL)), "sigint": "default_int_handler", "record_fd": "/dev/null"}


# -- Ctrl-Z ----------------------------------------------------------------------------------------


def _tree_states(tag: str, parent: int) -> dict[int, tuple[str, int]]:
    """{pid: (state, rss pages)} of the run's processes but the parent and the keeper."""
    states = {}
    for line in tagged(tag):
        pid = int(line.split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if pid != parent and int(fields[1]) != parent:  # the keeper is the parent's child
            states[pid] = (fields[0], int(fields[21]))
    return states


def test_ctrl_z_suspends_the_whole_tree_and_resumes_it(tmp_path: Path) -> None:
    # GIVEN a run whose worker and child (in a session of its own) both keep growing, under a 400 MiB cap
    log, tag = tmp_path / "log", uuid.uuid4().hex
    proc = start(
        "run",
        "--variant",
        loop("GrowingTree"),
        "--option",
        f"log={log}",
        "--epochs",
        "500",
        "--memory-cap",
        "400MiB",
        cwd=tmp_path,
        tag=tag,
    )
    wait_for(log, "child")
    time.sleep(0.5)
    # WHEN `run` gets Ctrl-Z (SIGTSTP)
    proc.send_signal(signal.SIGTSTP)
    time.sleep(0.5)
    # THEN the worker and its child are stopped too, and stay where they were
    stopped = _tree_states(tag, proc.pid)
    assert len(stopped) == 2 and all(state == "T" for state, _ in stopped.values()), stopped
    time.sleep(1.0)
    assert _tree_states(tag, proc.pid) == stopped
    # WHEN it is continued THEN the tree goes on growing to the cap, and the run stops there
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    stop = storage.load_run(run_dir_of(out, tmp_path)).meta["stop"]
    assert 400 * MiB < stop["tree_pss_bytes"] < 500 * MiB
    assert survivors(tag) == []


# -- measures --------------------------------------------------------------------------------------


def test_children_that_grow_while_the_worker_is_flat_leak_on_tree_pss_and_not_on_rss(tmp_path: Path) -> None:
    # GIVEN two forked children that each copy 2 MiB of the worker's buffer on write every epoch
    proc = start(
        "run",
        "--variant",
        loop("CopyOnWrite"),
        "--epochs",
        "16",
        "--measure",
        "tree-pss",
        cwd=tmp_path,
        tag=uuid.uuid4().hex,
    )
    out, err = proc.communicate(timeout=120)
    # WHEN judged on the tree's PSS THEN it is a leak of about 4 MiB an epoch, and the worker's RSS is flat
    assert proc.returncode == 0, err
    assert out.splitlines()[1].startswith("verdict: tree PSS leak, +")
    run_dir = run_dir_of(out, tmp_path)
    growth = storage.load_run(run_dir).meta["growth"]
    assert (growth["judged"], growth["verdict"], growth["series"]["rss"]["verdict"]) == ("tree-pss", "leak", "flat")
    assert 3 * MiB < growth["bytes_per_epoch"] < 5 * MiB
    # AND check holds it to a budget on the tree, and passes it on the worker's RSS
    (tmp_path / "pyproject.toml").write_text('[tool.leakbench]\nmax-growth = "1 MiB"\nmeasure = "tree-pss"\n')
    tree_check = subprocess.run(
        [sys.executable, "-m", "harness", "check", str(run_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tree_check.returncode == 1 and "tree PSS grew" in tree_check.stdout
    (tmp_path / "pyproject.toml").write_text('[tool.leakbench]\nmax-growth = "1 MiB"\n')
    rss_check = subprocess.run(
        [sys.executable, "-m", "harness", "check", str(run_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rss_check.returncode == 0 and rss_check.stdout.startswith("ok ")
    # AND explain shows the tree's series beside the worker's, the judged one marked
    explained = subprocess.run(
        [sys.executable, "-m", "harness", "explain", str(run_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = [line.split()[:3] for line in explained.stdout.splitlines() if line.startswith(("  RSS", "  tree"))]
    assert rows[:3] == [["RSS", "flat", rows[0][2]], ["tree", "PSS", "(judged)"], ["tree", "USS", "leak"]]


@pytest.mark.parametrize(
    ("args", "config", "fragment"),
    [
        (["run", "--variant", "numpy", "--measure", "nosuch"], None, "invalid measure 'nosuch': expected one of"),
        (["run", "--variant", "numpy", "--measure", "heap"], None, "measure heap needs --trace"),
        (["check", "RUN"], 'measure = "nosuch"', "invalid measure 'nosuch': expected one of"),
    ],
)
def test_a_bad_measure_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], config: str | None, fragment: str
) -> None:
    # GIVEN a bad measure on the command line or in [tool.leakbench]
    if config is not None:
        (tmp_path / "pyproject.toml").write_text(f"[tool.leakbench]\n{config}\n")
    run_dir = Path(__file__).parent.parent / "fixtures" / "runs" / "20261127T181424-numpy-noleak-s0-a2f620"
    args = [str(run_dir) if arg == "RUN" else arg for arg in args]
    # WHEN the command runs THEN one line on stderr says what is wrong, exit 2, nothing written
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("leakbench: error: ") and fragment in done.stderr
    assert not (tmp_path / "results").exists()


def test_the_plugin_guards_the_tree_when_asked(leakbench_guard: Any) -> None:
    # GIVEN the copy-on-write loop WHEN guarded on the tree's PSS, its leak expected THEN the leak is caught
    judgement = leakbench_guard(loop("CopyOnWrite"), epochs=16, measure="tree-pss", expect="leak")
    assert (judgement.growth["judged"], judgement.verdict, judgement.peak_name) == ("tree-pss", "leak", "tree PSS")
    assert judgement.peak_bytes is not None and judgement.peak_bytes > judgement.peak_rss_bytes
    # AND a max-peak on the tree holds the tree's peak PSS, not the worker's RSS
    with pytest.raises(pytest.fail.Exception, match=r"peak tree PSS [\d.]+ MiB is over the 64.0 MiB budget"):
        leakbench_guard(loop("CopyOnWrite"), epochs=6, measure="tree-pss", max_peak="64 MiB")
