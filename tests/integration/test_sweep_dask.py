"""`sweep --scheduler` on a real Dask cluster (LocalCluster, 2 worker processes): the records of a sequential sweep,
every file in the client's results directory only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from harness.storage import find_runs, load_runs, read_meta
from tests.helpers import FIXTURES, TAG, cli, harness_argv, survivors, tagged

distributed = pytest.importorskip(
    "distributed", reason="sweep --scheduler needs Dask distributed: pip install '.[dask]' (.ci/run installs it)"
)
SLEEPY = f"{FIXTURES / 'reliability_loops.py'}:Sleepy"

SPEC = """name = "small"
[[runs]]
variants = ["numpy"]
seeds = 2
epochs = 12
[[runs]]
variants = ["numpy"]
leaks = ["history"]
epochs = 12
memory_cap = "512MiB"
"""


def records(results: Path) -> dict[tuple[object, ...], tuple[str, list[float]]]:
    """(variant, leak, seed) -> (verdict, losses per epoch) of every run under ``results``."""
    found = {}
    for run in load_runs([results]):
        key = (run.meta["variant"], run.meta["leak"], run.meta["seed"])
        found[key] = (run.meta["growth"]["verdict"], run.epochs["loss"].tolist())
    return found


@pytest.mark.slow
def test_a_sweep_on_a_dask_cluster_records_what_a_sequential_sweep_does_and_lands_it_here(tmp_path: Path) -> None:
    # GIVEN a LocalCluster of 2 worker processes, each declaring 1 run slot and 1 GiB, working in a directory of
    # their own, with their temporary files there too
    (tmp_path / "spec.toml").write_text(SPEC)
    workers = tmp_path / "workers"
    (workers / "tmp").mkdir(parents=True)
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        resources={"slots": 1, "MiB": 1024},
        local_directory=str(workers),
        env={"TMPDIR": str(workers / "tmp")},
        dashboard_address=None,
    )
    try:
        # WHEN the spec is swept through the cluster, and sequentially beside it
        remote = cli(
            "sweep", "spec.toml", "--results", "remote", "--scheduler", cluster.scheduler_address, cwd=tmp_path
        )
        local = cli("sweep", "spec.toml", "--results", "local", cwd=tmp_path)
    finally:
        cluster.close()
    # THEN both finished every run
    assert remote.returncode == 0, remote.stderr
    assert local.returncode == 0, local.stderr
    # AND the records are the same: verdicts equal, losses bit for bit
    got, want = records(tmp_path / "remote"), records(tmp_path / "local")
    assert len(got) == 3 and got.keys() == want.keys()
    for key, (verdict, losses) in want.items():
        assert got[key][0] == verdict, key
        assert pd.Series(got[key][1]).equals(pd.Series(losses)), key
    # AND the runs ran in the workers: their schedule names the cluster
    schedules = [run.meta["schedule"] for run in load_runs([tmp_path / "remote"])]
    assert {s["scheduler"] for s in schedules} == {cluster.scheduler_address}
    # AND every file is in the client's results directory only: nothing left where the workers worked
    leftover = [p for p in workers.rglob("*") if p.is_file() and p.name in ("meta.json", "epochs.csv", "samples.csv")]
    assert leftover == []
    assert [p.name for p in (workers / "tmp").iterdir() if p.name.startswith("leakbench-task-")] == []
    assert not [p for p in (tmp_path / "remote").iterdir() if p.name.startswith(".incoming")]


def test_scheduler_local_starts_a_cluster_here_and_lands_every_run(tmp_path: Path) -> None:
    # GIVEN a spec of two short runs and no cluster
    (tmp_path / "spec.toml").write_text('name = "here"\n[[runs]]\nvariants = ["numpy"]\nseeds = 2\nepochs = 4\n')
    # WHEN it is swept with --scheduler local, two run slots
    done = cli("sweep", "spec.toml", "--results", "r", "--scheduler", "local", "--jobs", "2", cwd=tmp_path)
    # THEN both runs completed and landed whole in the results directory, placed by a 2-slot cluster
    assert done.returncode == 0, done.stderr
    metas = [read_meta(path) or {} for path in find_runs(tmp_path / "r")]
    assert sorted((m["seed"], m["status"]) for m in metas) == [(0, "completed"), (1, "completed")]
    assert {(m["schedule"]["scheduler"], m["schedule"]["slots"]) for m in metas} == {("local", 2)}
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.startswith(".incoming")]


@pytest.mark.slow
def test_a_dask_worker_lost_mid_run_leaves_one_completed_run_and_no_process(tmp_path: Path) -> None:
    # GIVEN a cluster of 2 worker processes and a sweep of one run of 12 epochs of 0.3 s through it
    (tmp_path / "spec.toml").write_text(
        f'name = "lost"\n[[runs]]\nvariants = ["{SLEEPY}"]\nepochs = 12\nmemory_cap = "300MiB"\n'
        "options = { sleep = 0.3 }\n"
    )
    tag = uuid.uuid4().hex
    # (the workers carry the tag, so every run they start does)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, resources={"slots": 1, "MiB": 1024}, env={TAG: tag}, dashboard_address=None
    )
    try:
        sweep = subprocess.Popen(
            harness_argv("sweep", "spec.toml", "--results", "r", "--scheduler", cluster.scheduler_address),
            cwd=tmp_path,
            env=os.environ | {TAG: tag},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # WHEN the Dask worker performing the run is killed (SIGKILL) a few epochs in
        worker = running_worker(tag)
        os.kill(worker, signal.SIGKILL)
        _, err = sweep.communicate(timeout=180)
    finally:
        cluster.close()
    # THEN the scheduler performed the task again and the sweep landed exactly one run: completed
    assert sweep.returncode == 0, err
    statuses = [read_meta(path)["status"] for path in find_runs(tmp_path / "r")]  # type: ignore[index]
    assert statuses == ["completed"], statuses
    # AND the run on the lost worker stopped with it: nothing of it is left
    assert survivors(tag, within_s=15) == []


def running_worker(tag: str, timeout_s: float = 60) -> int:
    """The pid of the Dask worker whose `harness run` (tagged) has recorded 3 epochs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid in tagged_pids(tag):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if b"run" in cmdline and b"--results" in cmdline:
                results = Path(cmdline[cmdline.index(b"--results") + 1].decode())
                epochs = [p / "epochs.csv" for p in results.glob("*") if (p / "epochs.csv").exists()]
                if epochs and epochs[0].read_text().count("\n") > 3:
                    return int(stat[stat.rfind(")") + 2 :].split()[1])  # its parent: the Dask worker
        time.sleep(0.1)
    raise AssertionError("no run got 3 epochs in")


def tagged_pids(tag: str) -> list[int]:
    """Pids of the live processes carrying ``tag``."""
    return [int(entry.split(" ", 1)[0]) for entry in tagged(tag)]
