"""`python -m harness bench` in a subprocess, and a measurement whose child process fails.

Speed is never asserted here: only the table's shape, the notes and the JSON.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from harness import bench
from harness.bench import MATMUL, Job
from harness.bench import measure as bench_measure
from tests.helpers import cli


def test_a_failing_child_is_one_measurement_error_naming_the_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a matmul size the child cannot use
    monkeypatch.setattr(bench_measure, "MATMUL_SIZE", -1)  # where Measurer reads it
    measurer = bench.Measurer(bench.make_plan(["lists"], ("lists", "generators", "numpy", "torch"), repeat=1), tmp_path)
    # WHEN it is measured THEN the child's exception comes back as one line naming the job
    with pytest.raises(bench.MeasurementError, match=r"^matmul \(round 1\) failed: ValueError: .*negative"):
        measurer(Job(MATMUL, 1))


def test_bench_prints_the_table_and_skips_a_missing_torch(tmp_path: Path) -> None:
    # GIVEN an environment where importing torch fails, as on an install without the torch extra
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named torch (test double)')\n")
    # (ahead of any PYTHONPATH already set, which says where this harness is imported from)
    site = os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": site}
    # WHEN numpy, torch and lists are benchmarked for 1 epoch after 1 warm-up, twice, saving JSON
    done = cli(
        "bench",
        "--variants",
        "numpy",
        "torch",
        "lists",
        "--epochs",
        "1",
        "--warmup",
        "1",
        "--repeat",
        "2",
        "--json",
        "bench.json",
        cwd=tmp_path,
        env=env,
    )
    # THEN it exits 0 with no progress (stderr is not a terminal)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    # AND the table has its header, one row of 7 columns per measured variant, torch skipped with the reason
    assert re.split(r"\s{2,}", lines[0]) == [
        "variant",
        "epochs",
        "epochs/s",
        "min-max",
        "vs numpy",
        "GFLOP/s",
        "of limit",
    ]
    for line, name in zip(lines[1:3], ["numpy", "lists"], strict=True):
        cells = re.split(r"\s{2,}", line)
        assert cells[0] == name and cells[1] == "1+1" and len(cells) == 7
        assert re.fullmatch(r"[\d.,]+%", cells[6])
    assert re.match(r"torch +skipped: cannot import variant 'torch'", lines[3])
    assert "pip install '.[torch]'" in lines[3]
    # AND the notes: FLOPs, the limit on 1 thread, the overhead of `run`, the method
    assert lines[4].startswith("FLOPs per epoch: ")
    assert lines[5].startswith("machine limit: float64 1024x1024 matmul on 1 thread: ")
    assert lines[6].startswith("harness overhead: numpy under `run` ")
    assert lines[7].startswith("worker baseline RSS (harness loaded, before the loop is built): ")
    assert "no pandas or matplotlib" in lines[7]
    assert lines[8].startswith("epochs = warm-up+measured;") and len(lines) == 9
    # AND the JSON holds both rounds of each measured variant
    data = json.loads((tmp_path / "bench.json").read_text())
    rates = {row["variant"]: row["epochs_per_s"] for row in data["variants"]}
    assert len(rates["numpy"]) == len(rates["lists"]) == 2 and rates["torch"] == []
    assert len(data["limit_flops_per_s"]) == 2 and len(data["overhead"]["run_epochs_per_s"]) == 2
    assert data["footprint"]["worker_rss_bytes"] > data["footprint"]["python_rss_bytes"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variants", "numpy", "nope"], "unknown variant 'nope'"),
        (["--epochs", "0"], "--epochs must be a positive whole number, got 0"),
        (["--repeat", "0"], "--repeat must be a positive whole number, got 0"),
        (["--epochs", "ten"], "expected a whole number, got 'ten'"),
        (["--json", "no/such/dir/x.json"], "directory 'no/such/dir' does not exist"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    # WHEN bench is given a bad option
    done = cli("bench", *args, cwd=tmp_path)
    # THEN it exits 2 with one line naming it, before measuring anything
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr
