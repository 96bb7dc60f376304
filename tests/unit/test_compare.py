"""compare: changes between a baseline and a candidate, judged against the noise; golden output on fixture runs.

The command in a subprocess is in tests/integration/test_compare.py.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest

from harness import report, storage
from harness.growth import MIN_BYTES_PER_EPOCH
from harness.report import compare
from harness.report import writers as render_formats
from tests.helpers import KIB, MIB, assert_golden, fixture_run_dir


def table(n: int, **columns: list[float] | list[str]) -> pd.DataFrame:
    """A run table of ``n`` numpy CNN runs without a leak; given columns replace the defaults."""
    base = {
        "run_id": [f"r{i}" for i in range(n)],
        "variant": ["numpy"] * n,
        "model": ["CNN"] * n,
        "leak": ["none"] * n,
        "seed": list(range(n)),
        "epochs_done": [100] * n,
        "epochs_planned": [100] * n,
        "status": ["completed"] * n,
        "verdict": ["flat"] * n,
        "bytes_per_epoch": [0.0] * n,
        "ci_low": [-1000.0] * n,
        "ci_high": [1000.0] * n,
        "peak_rss_bytes": [50.0 * MIB] * n,
        "epochs_per_s": [100.0] * n,
        "accuracy": [1.0] * n,
        "correct_prob": [0.98] * n,
        "loss": [0.02] * n,
    }
    return pd.DataFrame(base | columns)


def change_of(changes: list[compare.Change], column: str) -> compare.Change:
    """The change of one metric."""
    (found,) = [c for c in changes if c.metric.column == column]
    return found


def test_with_repeats_the_noise_is_twice_the_standard_error_of_the_difference() -> None:
    # GIVEN three runs a side whose speeds differ by 30 epochs/s with a spread of 10
    baseline = table(3, epochs_per_s=[100.0, 110.0, 90.0])
    candidate = table(3, epochs_per_s=[130.0, 140.0, 120.0])
    # WHEN compared
    speed = change_of(compare.compare_tables(baseline, candidate), "epochs_per_s")
    # THEN the noise is 2 sqrt(sd_b^2/3 + sd_c^2/3), computed here independently, and 30 is beyond it
    expected = 2 * math.sqrt(statistics.stdev([100, 110, 90]) ** 2 / 3 + statistics.stdev([130, 140, 120]) ** 2 / 3)
    assert speed.noise == pytest.approx(expected)
    assert speed.change == pytest.approx(30.0) and speed.judgement == "better" and not speed.regression
    assert speed.noise_rule == "2 s.e., 3+3 runs"


def test_a_single_run_borrows_the_spread_of_the_repeated_side() -> None:
    # GIVEN four baseline runs and one candidate run, 12 epochs/s slower
    baseline = table(4, epochs_per_s=[100.0, 104.0, 96.0, 100.0])
    candidate = table(1, epochs_per_s=[88.0])
    speed = change_of(compare.compare_tables(baseline, candidate), "epochs_per_s")
    # THEN its noise uses the baseline's sd for both sides, and the slow-down is a regression
    sd = statistics.stdev([100, 104, 96, 100])
    assert speed.noise == pytest.approx(2 * math.sqrt(sd**2 / 4 + sd**2 / 1))
    assert speed.regression


def test_a_change_smaller_than_the_floor_never_counts_even_against_zero_spread() -> None:
    # GIVEN identical repeats (spread zero), 100 KiB more peak RSS and 1 KiB more growth per epoch
    baseline = table(3)
    candidate = table(3, peak_rss_bytes=[50.0 * MIB + 100 * 1024] * 3, bytes_per_epoch=[1024.0] * 3)
    changes = compare.compare_tables(baseline, candidate)
    # THEN both are within the noise: under 1 MiB, and under the leak threshold per epoch
    assert change_of(changes, "peak_rss_bytes").judgement == "within noise"
    assert change_of(changes, "bytes_per_epoch").judgement == "within noise"
    assert compare.regressions(changes) == []


def test_single_runs_judge_growth_by_the_two_trend_intervals() -> None:
    # GIVEN one run a side: growth 0 +/- 300 KiB against 2 MiB +/- 400 KiB
    baseline = table(1, bytes_per_epoch=[0.0], ci_low=[-300.0 * KIB], ci_high=[300.0 * KIB])
    candidate = table(
        1,
        bytes_per_epoch=[2.0 * MIB],
        ci_low=[2.0 * MIB - 400 * KIB],
        ci_high=[2.0 * MIB + 400 * KIB],
    )
    growth = change_of(compare.compare_tables(baseline, candidate), "bytes_per_epoch")
    # THEN the noise is sqrt(300^2 + 400^2) = 500 KiB, and 2 MiB more per epoch is a regression
    assert growth.noise == pytest.approx(500 * KIB) and growth.noise_rule == "trend CIs"
    assert growth.regression
    # AND a change inside those intervals is not
    within = table(1, bytes_per_epoch=[400.0 * KIB], ci_low=[0.0], ci_high=[800.0 * KIB])
    assert change_of(compare.compare_tables(baseline, within), "bytes_per_epoch").judgement == "within noise"


def test_the_growth_floor_is_the_growth_analysis_leak_threshold() -> None:
    # GIVEN identical repeats (spread zero) WHEN growth rises by just under, then just over, the leak threshold
    under = table(3, bytes_per_epoch=[0.9 * MIN_BYTES_PER_EPOCH] * 3)
    over = table(3, bytes_per_epoch=[1.1 * MIN_BYTES_PER_EPOCH] * 3)
    # THEN only the second counts: a change the verdict could not call a leak is not a regression either
    assert change_of(compare.compare_tables(table(3), under), "bytes_per_epoch").judgement == "within noise"
    assert change_of(compare.compare_tables(table(3), over), "bytes_per_epoch").regression


def test_single_runs_use_stated_tolerances_for_speed_and_exactness_for_metrics() -> None:
    # GIVEN one run a side, 8 % slower and with a different final correct_prob
    changes = compare.compare_tables(table(1), table(1, epochs_per_s=[92.0], correct_prob=[0.97]))
    # THEN speed is within the assumed 10 %, and the metric change of one seed is real
    assert change_of(changes, "epochs_per_s").noise_rule == "assumed 10%"
    assert change_of(changes, "epochs_per_s").judgement == "within noise"
    assert change_of(changes, "correct_prob").judgement == "worse"


def test_sets_are_compared_group_by_group_and_unmatched_groups_are_named() -> None:
    # GIVEN a baseline of numpy and lists runs and a candidate of numpy runs only
    baseline = pd.concat([table(2), table(1, variant=["lists"])])
    candidate = table(2)
    # THEN only numpy is compared and lists is named as a baseline-only group
    assert {c.group for c in compare.compare_tables(baseline, candidate)} == {"numpy CNN none"}
    assert compare.unmatched_groups(baseline, candidate) == ["baseline only: lists CNN none"]


def test_comparing_a_fix_with_its_leak_matches_the_golden_text() -> None:
    # GIVEN the stored lists runs, fixed as baseline and leaky as candidate
    baseline = report.run_table(storage.load_runs([fixture_run_dir("lists-noleak")]))
    candidate = report.run_table(storage.load_runs([fixture_run_dir("lists-recursion-s0-e3f659")]))
    changes = compare.compare_tables(baseline, candidate)
    # THEN the table is as reviewed, and growth and peak RSS are regressions
    assert_golden("compare_lists_fix_vs_leak.txt", render_formats.text_table(compare.comparison_table(changes)) + "\n")
    assert {c.metric.column for c in compare.regressions(changes)} >= {
        "bytes_per_epoch",
        "peak_rss_bytes",
    }
