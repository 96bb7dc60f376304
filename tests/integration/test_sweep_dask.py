"""`sweep --scheduler` on a real Dask cluster (LocalCluster, 2 worker processes): the records of a sequential sweep,
every file in the client's results directory only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.storage import load_runs
from tests.helpers import cli

distributed = pytest.importorskip("distributed")

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
