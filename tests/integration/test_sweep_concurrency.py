"""Sweeps that run beside each other, are killed and resumed (../shared/audit/RELIABILITY.md W5), and bad input (W6).

Every process a test starts carries a tag (tests.helpers.TAG), so a scan of
/proc finds any run a sweep left behind; each test has a machine registry of
its own (LEAKBENCH_MACHINE_DIR), so runs of other work on the machine do not
count as sharing it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from harness.storage import find_runs, read_meta
from tests.helpers import FIXTURES, TAG, cli, harness_argv, survivors

SLEEPY = f"{FIXTURES / 'reliability_loops.py'}:Sleepy"


def spec(tmp_path: Path, seeds: int, epochs: int, sleep: float) -> Path:
    """A spec of ``seeds`` runs of the Sleepy loop."""
    path = tmp_path / "spec.toml"
    path.write_text(
        f'name = "w5"\n[[runs]]\nvariants = ["{SLEEPY}"]\nseeds = {seeds}\nepochs = {epochs}\n'
        f'memory_cap = "300MiB"\noptions = {{ sleep = {sleep} }}\n'
    )
    return path


def environment(tmp_path: Path, tag: str) -> dict[str, str]:
    return os.environ | {TAG: tag, "LEAKBENCH_MACHINE_DIR": str(tmp_path / "machine")}


def start_sweep(tmp_path: Path, results: str, tag: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        harness_argv("sweep", "spec.toml", "--results", results, *args),
        cwd=tmp_path,
        env=environment(tmp_path, tag),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def statuses_by_seed(results: Path) -> Counter[tuple[int, str]]:
    """(seed, status) -> how many run directories."""
    return Counter((meta["seed"], meta["status"]) for meta in map(read_meta, find_runs(results)) if meta)


def wait_for_epochs(results: Path, epochs: int, timeout_s: float = 60) -> None:
    """Until some run under ``results`` has recorded ``epochs`` epochs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run in find_runs(results):
            rows = (run / "epochs.csv").read_text().count("\n") if (run / "epochs.csv").exists() else 0
            if rows > epochs:
                return
        time.sleep(0.1)
    raise AssertionError(f"no run reached epoch {epochs} within {timeout_s} s")


@pytest.mark.slow
def test_two_sweeps_of_one_spec_into_one_directory_perform_each_run_once_10_times_in_10(tmp_path: Path) -> None:
    spec(tmp_path, seeds=4, epochs=3, sleep=0.05)
    for trial in range(10):
        # GIVEN two sweeps of the same spec started together into one directory (two runs in flight at most)
        results = f"r{trial}"
        tag = uuid.uuid4().hex
        sweeps = [start_sweep(tmp_path, results, tag) for _ in range(2)]
        ended = [sweep.communicate(timeout=300) for sweep in sweeps]
        # THEN both finished, each planned run was performed exactly once, and each manifest lists all four
        assert [sweep.returncode for sweep in sweeps] == [0, 0], ended
        assert statuses_by_seed(tmp_path / results) == Counter({(seed, "completed"): 1 for seed in range(4)}), trial
        manifest = json.loads((tmp_path / results / "sweep-w5.json").read_text())
        assert all(entry["run_dir"] for entry in manifest["runs"]), manifest
        assert survivors(tag) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_sweep_killed_mid_run_leaves_no_run_going_and_its_resume_repeats_nothing_finished(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # GIVEN a sweep of 3 runs of 10 epochs (0.3 s each), two at a time, killed once a run is 3 epochs in
    spec(tmp_path, seeds=3, epochs=10, sleep=0.3)
    tag = uuid.uuid4().hex
    sweep = start_sweep(tmp_path, "r", tag, "--jobs", "2")
    wait_for_epochs(tmp_path / "r", 3)
    sweep.send_signal(signum)
    _, err = sweep.communicate(timeout=60)
    # THEN no process of its runs is left (they stop as interrupted), and the manifest is there
    assert survivors(tag, within_s=15) == []
    assert (tmp_path / "r" / "sweep-w5.json").is_file()
    if signum == signal.SIGTERM:
        assert sweep.returncode == 130, err
        assert "run the same command again to resume" in err
    stopped = statuses_by_seed(tmp_path / "r")
    assert all(status in ("interrupted", "completed") for _, status in stopped), stopped
    # WHEN the same command runs again
    resumed = cli("sweep", "spec.toml", "--results", "r", "--jobs", "2", cwd=tmp_path, env=environment(tmp_path, tag))
    # THEN it performs only what did not finish: one completed run per planned run, no process left
    assert resumed.returncode == 0, resumed.stderr
    after = statuses_by_seed(tmp_path / "r")
    assert [after[(seed, "completed")] for seed in range(3)] == [1, 1, 1], after
    assert resumed.stderr.count("already done") == sum(n for (_, s), n in stopped.items() if s == "completed")
    assert survivors(tag) == []


BAD_SPEC_NAME = '[[runs]]\nvariants = ["numpy"]\nepochs = 2\n'


@pytest.mark.parametrize(
    ("args", "spec_text", "message"),
    [
        (["--jobs", "0"], None, "--jobs: expected a whole number of runs at once from 1 to 256, got '0'"),
        (["--scheduler", "nosuch:1"], None, "--scheduler: expected local or tcp://HOST:PORT (or tls://HOST:PORT), got"),
        (["--scheduler", "tcp://h:99999"], None, "--scheduler: expected local or tcp://HOST:PORT (or tls://HOST:PORT)"),
        (["--scheduler", "tcp://127.0.0.1:1"], None, "cannot reach the Dask scheduler at tcp://127.0.0.1:1"),
        # TEST-NET-1 (RFC 5737) is routed nowhere: no refusal, the connection attempt times out (or fails at once)
        (["--scheduler", "tcp://192.0.2.1:8786"], None, "cannot reach the Dask scheduler at tcp://192.0.2.1:8786"),
        (["--memory-budget", "0"], None, "argument --memory-budget: expected a size of at least 1 MiB, got '0'"),
        ([], 'name = "../../x"\n' + BAD_SPEC_NAME, "the name '../../x' must be 1-100 letters, digits"),
        ([], 'name = "/tmp/abs"\n' + BAD_SPEC_NAME, "the name '/tmp/abs' must be 1-100 letters, digits"),
        ([], f'name = "{"n" * 101}"\n' + BAD_SPEC_NAME, "must be 1-100 letters, digits, '.', '_' or '-'"),
        (["--memory-budget", "100MiB"], None, "its memory cap 300.0 MiB is more than the memory budget"),
    ],
)
def test_bad_input_is_one_line_exit_2_within_10_s_and_nothing_written(
    tmp_path: Path, args: list[str], spec_text: str | None, message: str
) -> None:
    # GIVEN a spec (a good one unless the case gives its own) in an empty directory
    if spec_text is None:
        spec(tmp_path, seeds=1, epochs=2, sleep=0.0)
    else:
        (tmp_path / "spec.toml").write_text(spec_text)
    if "--scheduler" in args and args[1].startswith("tcp://1"):
        pytest.importorskip("distributed", reason="reaching a scheduler needs Dask distributed: pip install '.[dask]'")
    # WHEN it is swept with bad input
    begin = time.monotonic()
    done = cli("sweep", "spec.toml", *args, cwd=tmp_path, env=environment(tmp_path, uuid.uuid4().hex), timeout=60)
    # THEN one line names the problem, within 10 s, exit 2, and nothing was written
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
    assert time.monotonic() - begin < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


@pytest.mark.slow
def test_sweeps_of_a_finished_spec_at_once_write_its_manifest_without_meeting(tmp_path: Path) -> None:
    # GIVEN a spec whose runs are all done (RELIABILITY.md W5: six such sweeps at once crashed on a shared tmp name)
    spec(tmp_path, seeds=2, epochs=2, sleep=0.0)
    first = cli("sweep", "spec.toml", "--results", "r", cwd=tmp_path, env=environment(tmp_path, uuid.uuid4().hex))
    assert first.returncode == 0, first.stderr
    for _ in range(3):
        # WHEN six sweeps of it start at once into its directory
        tag = uuid.uuid4().hex
        sweeps = [start_sweep(tmp_path, "r", tag) for _ in range(6)]
        ended = [sweep.communicate(timeout=120) for sweep in sweeps]
        # THEN each says every run is done, none crashed, and the manifest is whole, with no temporary file left
        assert [sweep.returncode for sweep in sweeps] == [0] * 6, ended
        assert all(err.count("already done") == 2 and "Traceback" not in err for _, err in ended), ended
        manifest = json.loads((tmp_path / "r" / "sweep-w5.json").read_text())
        assert [entry["status"] for entry in manifest["runs"]] == ["skipped", "skipped"]
        assert [p.name for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("results", [[], ["--results", "r"]])
def test_a_spec_name_that_is_a_path_writes_nothing_anywhere(tmp_path: Path, results: list[str]) -> None:
    # GIVEN RELIABILITY.md W6: specs named "../../x" and by an absolute path, swept two levels down
    cwd = tmp_path / "trav" / "a" / "b"
    cwd.mkdir(parents=True)
    names = {"traversal.toml": "../../x", "abs_name.toml": str(tmp_path / "escaped")}
    for file, name in names.items():
        (cwd / file).write_text(f'name = "{name}"\n' + BAD_SPEC_NAME)
        # WHEN each is swept
        done = cli("sweep", file, *results, cwd=cwd, env=environment(tmp_path, uuid.uuid4().hex), timeout=60)
        # THEN one line quotes the name (its start, when long), exit 2
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"leakbench: error: {file}: the name {name[:20]!r}"[:-1]), line
        assert line.endswith("must be 1-100 letters, digits, '.', '_' or '-': a name, not a path"), line
    # AND nothing was written, below the working directory or above it
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "trav",
        "trav/a",
        "trav/a/b",
        "trav/a/b/abs_name.toml",
        "trav/a/b/traversal.toml",
    ]
