"""A script that marks no epochs: windows of its samples as its epochs, and the verdict per window everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import records, report, storage
from harness.growth import describe_measure, summarise_run
from harness.records import Sample, TreeFigures
from harness.report.explain import explain_text
from harness.storage import load_run, window_epochs
from tests.helpers import MIB, write_run

SCRIPT_META = {
    "variant": "train.py",
    "seed": None,
    "epochs_planned": None,
    "config": {},
    "script": {"path": "train.py", "module": None, "args": ["--lr", "0.1"]},
    "epochs_from": records.WINDOWS,
    "window_s": 1.0,
}


def steady(seconds: float, rate: float = MIB, start: float = -0.3, interval: float = 0.05) -> list[Sample]:
    """Samples every ``interval`` s from ``start``: 100 MiB plus ``rate`` bytes a second after 0, a PSS every 5th."""
    samples = []
    for index, t in enumerate(np.round(np.arange(start, seconds, interval), 6)):  # as samples.csv stores them
        rss = int(100 * MIB + rate * max(t, 0.0))
        tree = TreeFigures(0, 0, None, rss + 1000 if index % 5 == 0 else None)
        samples.append(Sample(float(t), rss, 0, tree))
    return samples


def frame(samples: list[Sample]) -> pd.DataFrame:
    return pd.DataFrame([s.row() for s in samples], columns=list(records.SAMPLE_COLUMNS))


def test_windows_are_the_complete_windows_of_the_samples_after_the_start() -> None:
    # GIVEN 10.3 s of samples of a steady 1 MiB/s leak, some taken before the script started (t < 0)
    table = window_epochs(frame(steady(10.3)), 1.0)
    # THEN ten windows (the 11th is still open), with the columns and types of epochs.csv
    assert list(table.columns) == list(records.EPOCH_COLUMNS)
    assert table["epoch"].tolist() == list(range(1, 11))
    assert table["elapsed_s"].tolist() == [float(k) for k in range(1, 11)]
    assert (table["epoch_s"] == 1.0).all() and table["heap_bytes"].isna().all() and table["py_blocks"].isna().all()
    assert str(table["rss_bytes"].dtype) == "Int64"
    # AND each window's RSS is its median: mid-window, 1 MiB apart; the peak the highest so far
    mids = (table["rss_bytes"] - 100 * MIB) / MIB
    assert np.allclose(mids, np.arange(10) + 0.475, atol=0.01)
    assert (table["peak_rss_bytes"].diff().dropna() > 0).all()
    # AND the tree's PSS is the median of the exact readings that fell in each window
    assert table["tree_pss_bytes"].notna().all()


def test_a_window_without_samples_has_no_row_and_a_transient_peak_does_not_move_the_median() -> None:
    # GIVEN flat samples with a gap (windows 3 and 4 unsampled) and one 500 MiB spike in window 6
    samples = [s for s in steady(9.0, rate=0) if not 2.0 <= s.t_s < 4.0]
    spike = next(i for i, s in enumerate(samples) if s.t_s >= 5.5)
    samples[spike] = Sample(samples[spike].t_s, 600 * MIB, 0)
    table = window_epochs(frame(samples), 1.0)
    # THEN the unsampled windows are missing, the spike is in the peak but not the median
    assert table["epoch"].tolist() == [1, 2, 5, 6, 7, 8]
    assert (table["rss_bytes"] == 100 * MIB).all()
    assert table["peak_rss_bytes"].tolist()[-3:] == [600 * MIB] * 3


@pytest.mark.parametrize("samples", [[], steady(0.7), steady(-0.1, start=-0.5)])
def test_too_few_samples_make_no_windows(samples: list[Sample]) -> None:
    assert window_epochs(frame(samples), 1.0).empty


def test_a_bad_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window_s must be a positive number"):
        window_epochs(frame(steady(3)), 0)


def test_a_script_run_judged_per_window_loads_and_reads_per_window(tmp_path: Path) -> None:
    # GIVEN a script run that marked no epoch, 12.2 s of a steady 1 MiB/s leak in samples.csv
    run_dir = write_run(tmp_path, "script-run", [], samples=steady(12.2), **SCRIPT_META)
    # WHEN loaded THEN its epochs are the windows, and its growth is per window, within 1%
    run = load_run(run_dir)
    assert len(run.epochs) == 12 and run.meta["epochs_from"] == records.WINDOWS
    growth = summarise_run(run.epochs, run.meta)
    assert growth["verdict"] == "leak" and growth["per"] == "window"
    assert growth["bytes_per_epoch"] == pytest.approx(MIB, rel=0.01)
    # AND every sentence says "window"
    text = describe_measure(growth)
    assert "MiB/window" in text and "over 12 windows after 0 warm-up windows" in text and "at window ~" in text
    explained = explain_text(run.meta, growth, None)
    assert "script: python train.py --lr 0.1: 12 windows of 1 s (it marks no epochs), completed" in explained
    assert "windows fitted" in explained and "/epoch" not in explained


def test_a_script_that_has_not_marked_yet_is_read_per_window(tmp_path: Path) -> None:
    # GIVEN a script run still going, which has marked nothing so far
    meta = SCRIPT_META | {"epochs_from": records.MARKS, "status": records.RUNNING}
    run = load_run(write_run(tmp_path, "live", [], samples=steady(6.5), **meta))
    # THEN what it has so far is windows
    assert run.meta["epochs_from"] == records.WINDOWS and run.meta["epochs_done"] == 6


def test_the_report_table_says_windows_and_has_no_seed_or_speed_for_a_script(tmp_path: Path) -> None:
    # GIVEN a loop's run and a script's run judged per window
    loop = write_run(tmp_path, "loop", [100 * MIB + k * 1024 for k in range(12)], epochs_planned=12)
    script = write_run(tmp_path, "script", [], samples=steady(8.2), **SCRIPT_META)
    runs = storage.load_runs([loop, script])
    # WHEN the report's table is made
    shown = report.format_run_table(report.run_table(runs))
    # THEN the growth column says it holds both, the script's cells say window, and it has no seed
    row = shown[shown["variant"] == "train.py"].iloc[0]
    assert "growth per epoch or window (95% CI)" in shown.columns
    assert "/window (" in row["growth per epoch or window (95% CI)"]
    assert (row["seed"], row["epochs"], row["model"], row["epochs/s"]) == ("-", "8 windows", "script", "-")
    loop_row = shown[shown["variant"] == "numpy"].iloc[0]
    assert (loop_row["seed"], loop_row["epochs"]) == ("0", "12/12")


def test_compare_notes_growth_per_window(tmp_path: Path) -> None:
    # GIVEN the same script recorded twice, once judged per window
    a = write_run(tmp_path, "a", [], samples=steady(8.2), **SCRIPT_META)
    b = write_run(tmp_path, "b", [], samples=steady(8.2, rate=0), **SCRIPT_META)
    base, cand = (report.run_table(storage.load_runs([d])) for d in (a, b))
    # THEN the comparison says its growth is per window
    assert "train.py script none: growth is per window of samples" in report.caveats(base, cand)
