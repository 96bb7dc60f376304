"""Schema version 2: the tree's columns written and read back; version-1 runs load as before; measures judged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness import records, storage
from harness.errors import UsageError
from harness.growth import summarise_growth, summarise_run
from harness.guard import Budget, judge

FIXTURE_RUNS = sorted((Path(__file__).parent.parent / "fixtures" / "runs").glob("*/meta.json"))
MiB = 1024 * 1024


@pytest.mark.parametrize("meta_path", FIXTURE_RUNS, ids=lambda p: p.parent.name)
def test_every_version_1_run_loads_as_before_with_the_tree_columns_empty(meta_path: Path) -> None:
    # GIVEN a run recorded by leakbench before the tree was (schema version 1)
    run_dir = meta_path.parent
    on_disk = json.loads(meta_path.read_text())
    assert on_disk["schema_version"] == 1
    header = (run_dir / "epochs.csv").read_text().splitlines()[0].split(",")
    # WHEN it is loaded
    run = storage.load_run(run_dir)
    # THEN its metadata is exactly what is on disk, its columns and metrics are there as written
    assert run.meta == on_disk and run.schema_version == 1
    assert list(run.epochs.columns[: len(header)]) == header
    assert run.metric_columns == [name for name in header if name not in records.V1_EPOCH_COLUMNS]
    assert run.epochs["rss_bytes"].notna().all()
    # AND the tree's columns are added, empty and typed, in both tables
    for table in (run.epochs, run.samples):
        for name in records.TREE_COLUMNS:
            assert table[name].isna().all() and str(table[name].dtype) == "Int64"
    assert run.max_children == 0 and run.peak_of("tree_pss_bytes") is None
    # AND its verdict on RSS is what it was; on the tree it cannot be judged, in one line saying why
    growth = summarise_run(run.epochs, run.meta)
    assert growth["judged"] == "rss" and list(growth["series"]) in (["rss"], ["rss", "heap"])
    with pytest.raises(UsageError, match="measure tree-pss needs the process tree's figures"):
        summarise_run(run.epochs, run.meta, "tree-pss")


def test_a_version_1_run_keeps_its_file_when_explained_and_checked(tmp_path: Path) -> None:
    # GIVEN a copy of a version-1 run WHEN judged with a budget on RSS THEN it is judged as before
    source = FIXTURE_RUNS[0].parent
    run_dir = Path(shutil.copytree(source, tmp_path / source.name))
    judgement = judge(storage.load_run(run_dir), Budget())
    assert judgement.growth["judged"] == "rss" and judgement.peak_name == "RSS"
    # AND a budget on the tree's PSS is refused with the run's path and the reason
    with pytest.raises(UsageError, match=f"{source.name}: measure tree-pss needs"):
        judge(storage.load_run(run_dir), Budget(measure="tree-pss"))


@pytest.mark.parametrize("version", [0, 4, 99, "2", True, None])
def test_unknown_schema_versions_are_refused(tmp_path: Path, version: object) -> None:
    # GIVEN a version-1 run whose meta.json claims another version WHEN loaded THEN one line refuses it
    run_dir = Path(shutil.copytree(FIXTURE_RUNS[0].parent, tmp_path / "run"))
    meta = json.loads((run_dir / "meta.json").read_text()) | {"schema_version": version}
    (run_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UsageError, match=r"schema_version .*this leakbench reads versions 1, 2 and 3"):
        storage.load_run(run_dir)


def test_a_version_2_run_writes_and_reads_back_the_tree(tmp_path: Path) -> None:
    # GIVEN epochs and samples with tree figures, written as the runner writes them
    writer = storage.RunWriter(tmp_path)
    tree = records.TreeFigures(2, 30 * MiB, 50 * MiB, 60 * MiB)
    writer.epoch(records.EpochRecord(1, 20 * MiB, 21 * MiB, None, 10, 0.1, 0.1, {"loss": 0.5}, tree))
    writer.samples([records.Sample(0.05, 20 * MiB, 1, records.TreeFigures(2, 30 * MiB)), records.Sample(0.1, 1, 1)])
    writer.close()
    meta = records.RunMeta(
        run_id="x",
        variant="v",
        leak=None,
        seed=0,
        epochs_planned=1,
        epochs_done=1,
        status=records.COMPLETED,
        config={},
        memory_cap_bytes=MiB,
        memory_limit_bytes=None,
        timeout_s=None,
        trace=False,
        sample_interval_s=0.05,
        started_at="2026-01-01T00:00:00.000Z",
        ended_at="2026-01-01T00:00:01.000Z",
        host={},
        versions={},
        git_commit=None,
        measure="tree-pss",
        process_tree={"enumeration": "proc-scan"},
    ).to_dict()
    storage.write_meta(tmp_path, meta)
    # WHEN loaded THEN the tree's figures come back where they were written, empty where not read
    run = storage.load_run(tmp_path)
    assert list(run.epochs.columns) == [*records.EPOCH_COLUMNS, "loss"] and run.metric_columns == ["loss"]
    assert run.epochs.loc[0, list(records.TREE_COLUMNS)].tolist() == [2, 30 * MiB, 50 * MiB, 60 * MiB]
    assert run.samples["tree_pss_bytes"].isna().all() and run.samples["children"].tolist() == [2, pd.NA]
    assert run.meta["measure"] == "tree-pss" and run.max_children == 2 and run.peak_of("tree_pss_bytes") == 60 * MiB


def test_the_growth_dict_says_which_measure_it_judged() -> None:
    # GIVEN epochs where the worker is flat and its children grow 2 MiB an epoch
    epochs = pd.DataFrame(
        {
            "epoch": range(1, 21),
            "rss_bytes": [40 * MiB] * 20,
            "children": [2] * 20,
            "tree_pss_bytes": [60 * MiB + 2 * MiB * e for e in range(20)],
            "tree_uss_bytes": [50 * MiB + 2 * MiB * e for e in range(20)],
        }
    )
    # WHEN judged on each measure THEN the top level is that series, named, and every series is there
    for measure, verdict in [("rss", "flat"), ("tree-pss", "leak"), ("tree-uss", "leak")]:
        growth = summarise_growth(epochs, 1024 * MiB, measure=measure)
        assert (growth["judged"], growth["verdict"]) == (measure, verdict)
        assert growth["measure"] == records.MEASURE_COLUMNS[measure]
        assert set(growth["series"]) == {"rss", "tree-pss", "tree-uss"}
    # AND the tree-pss series projects where the capped figure reaches the cap
    assert summarise_growth(epochs, 1024 * MiB)["series"]["tree-pss"]["projection"]["cap_epoch"] > 20
    # AND an unknown measure is refused, quoting it
    with pytest.raises(UsageError, match="invalid measure 'nosuch': expected one of rss, tree-pss, tree-uss, heap"):
        summarise_growth(epochs, measure="nosuch")
    # AND without children the tree's series are left out (they would repeat the worker's) unless judged
    alone = epochs.assign(children=0)
    assert set(summarise_growth(alone)["series"]) == {"rss"}
    assert summarise_growth(alone, measure="tree-pss")["judged"] == "tree-pss"
