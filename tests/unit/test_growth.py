"""Growth statistics on synthetic series whose right answer is known: trend, warm-up, verdict, projection."""

from __future__ import annotations

import itertools
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from harness.errors import UsageError
from harness.growth import (
    MIN_BYTES_PER_EPOCH,
    detect_warmup,
    exceeds_budget,
    format_growth,
    summarise_growth,
    trend,
    verdict,
)
from harness.growth.trend import (
    MAX_PAIRS,
    MAX_TEST_POINTS,
    kendall_s,
    kendall_var_s,
    mann_kendall_p,
    theil_sen_line,
)

PAGE = 4096
KiB = 1024
MiB = 1024**2
GiB = 1024**3
BASE = 300 * MiB


def pages(values: np.ndarray) -> np.ndarray:
    """Round down to whole pages, as RSS is."""
    return (np.asarray(values) // PAGE * PAGE).astype(np.int64)


def table(rss: np.ndarray, heap: np.ndarray | None = None) -> pd.DataFrame:
    """An epochs.csv table for epochs 1..n (heap empty unless given)."""
    n = len(rss)
    heap_column = pd.array([None] * n, dtype="Int64") if heap is None else pd.array(np.asarray(heap, np.int64))
    return pd.DataFrame(
        {"epoch": np.arange(1, n + 1), "rss_bytes": np.asarray(rss, np.int64), "heap_bytes": heap_column}
    )


def flat(n: int, rng: np.random.Generator, sd: float = 3 * PAGE) -> np.ndarray:
    """A flat run: page-granular noise around a constant."""
    return pages(BASE + rng.normal(0, sd, n))


def leaking(n: int, rate: float, rng: np.random.Generator, sd: float = 4 * PAGE) -> np.ndarray:
    """A steady leak of ``rate`` bytes per epoch with page-granular noise."""
    return pages(BASE + rate * np.arange(n) + rng.normal(0, sd, n))


# --- estimators against independent references -------------------------------------------------


def test_kendall_s_counts_every_pair_like_brute_force() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 8, 33, 130):
        # GIVEN series with many ties (few distinct values, like page-granular RSS)
        values = rng.integers(0, 4, n).astype(float)
        # WHEN S is counted by the merge sort THEN it equals the sum of signs over all pairs
        brute = sum(int(np.sign(values[j] - values[i])) for i, j in itertools.combinations(range(n), 2))
        assert kendall_s(values) == brute


def test_tie_corrected_variance_of_s_is_the_permutation_variance() -> None:
    # GIVEN a small series with tied groups of 3 and 2
    values = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 4.0])
    # WHEN S is computed over every ordering of the values (the null distribution, exactly)
    s_values = [kendall_s(np.array(order)) for order in itertools.permutations(values)]
    # THEN its mean is 0 and its variance is the tie-corrected formula
    assert np.mean(s_values) == pytest.approx(0)
    assert kendall_var_s(values) == pytest.approx(np.var(s_values))


def test_theil_sen_slope_and_sen_interval_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for n, rate in ((6, 50_000), (40, 0), (300, 64 * KiB)):
        # GIVEN page-granular series, flat and leaking
        values = leaking(n, rate, rng, sd=8 * PAGE).astype(float)
        epochs = np.arange(1, n + 1)
        # WHEN fitted
        fit = trend(values, epochs)
        reference = stats.theilslopes(values, epochs, method="joint")
        # THEN slope, intercept and CI are scipy's, and S agrees with scipy's Kendall tau-b
        assert (fit.slope, fit.intercept, fit.ci_low, fit.ci_high) == pytest.approx(
            (reference.slope, reference.intercept, reference.low_slope, reference.high_slope)
        )
        tau = stats.kendalltau(epochs, values).statistic
        pairs = n * (n - 1) / 2
        _, counts = np.unique(values, return_counts=True)
        assert fit.s == pytest.approx(tau * math.sqrt(pairs * (pairs - np.sum(counts * (counts - 1) / 2))))
        assert not fit.pairs_sampled


def test_sampled_pairs_give_nearly_the_exact_slope_and_interval() -> None:
    rng = np.random.default_rng(2)
    # GIVEN a series long enough that its pairs are sampled
    n = 1800
    assert n * (n - 1) // 2 > MAX_PAIRS
    values = leaking(n, 10 * KiB, rng, sd=64 * KiB).astype(float)
    # WHEN fitted (no pair of an epoch with itself: that would warn of 0/0), and all slopes
    # computed the slow way as a reference
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = trend(values)
    i, j = np.triu_indices(n, 1)
    slopes = np.sort((values[j] - values[i]) / (j - i))
    spread = 1.959963984540054 * math.sqrt(kendall_var_s(values))
    low = slopes[round((slopes.size - spread) / 2) - 1]
    high = slopes[round((slopes.size + spread) / 2)]
    # THEN the sample is flagged and its numbers are within a small fraction of the CI width
    assert fit.pairs_sampled
    width = high - low
    assert abs(fit.slope - np.median(slopes)) < 0.05 * width
    assert abs(fit.ci_low - low) < 0.1 * width and abs(fit.ci_high - high) < 0.1 * width
    # AND the same series always gives the same numbers
    assert trend(values) == fit


def test_a_million_point_series_is_tested_on_evenly_spread_points_and_keeps_its_verdict() -> None:
    rng = np.random.default_rng(3)
    # GIVEN a million epochs: one run leaking 1 KiB/epoch under 64 KiB of page-sized noise, one flat
    n = 1_000_000
    assert n > MAX_TEST_POINTS
    leak = leaking(n, 1 * KiB, rng, sd=64 * KiB).astype(float)
    flat = leaking(n, 0, rng, sd=64 * KiB).astype(float)
    # WHEN fitted
    leak_fit, flat_fit = trend(leak), trend(flat)
    # THEN S is the exact S of every k-th point (k = 8 here), not of all of them
    step = -(-n // MAX_TEST_POINTS)
    assert leak_fit.s == kendall_s(leak[::step])
    assert leak_fit.var_s == kendall_var_s(leak[::step])
    # AND the leak is found with its slope inside the interval, the flat run is not called a trend
    assert leak_fit.ci_low <= 1 * KiB <= leak_fit.ci_high and leak_fit.p_value < 1e-6
    assert flat_fit.ci_low <= 0 <= flat_fit.ci_high and flat_fit.p_value > 0.01
    assert leak_fit.n == n


def test_the_line_alone_is_the_trends_line() -> None:
    values = leaking(80, 10 * KiB, np.random.default_rng(18), sd=8 * PAGE).astype(float)
    epochs = np.arange(1.0, 81.0)
    fit = trend(values, epochs)
    assert theil_sen_line(values, epochs) == (fit.slope, fit.intercept)


def test_mann_kendall_p_is_two_sided_and_one_when_all_values_tie() -> None:
    # GIVEN S of a strictly rising and a strictly falling series of 10 (variance 125)
    rising, falling = np.arange(10.0), np.arange(10.0)[::-1]
    # THEN the p-values are equal, small, and follow the continuity-corrected normal approximation
    assert (
        trend(rising).p_value == trend(falling).p_value == pytest.approx(math.erfc(44 / math.sqrt(125) / math.sqrt(2)))
    )
    assert mann_kendall_p(0, 10.0) == 1.0
    assert trend(np.full(10, 5.0)).p_value == 1.0


def test_trend_refuses_what_it_cannot_fit() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        trend([1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        trend([1.0, 2.0, 3.0], [1, 1, 2])
    with pytest.raises(ValueError, match="finite"):
        trend([1.0, float("nan"), 3.0])


# --- warm-up ----------------------------------------------------------------------------------


def test_warmup_ends_where_a_rising_start_settles() -> None:
    # GIVEN memory that rises steeply for the first 4 epochs and is flat after
    rng = np.random.default_rng(3)
    values = flat(60, rng, sd=PAGE) + pages(np.r_[np.arange(4) * 10 * MiB, np.full(56, 40 * MiB)])
    # THEN exactly those 4 epochs are warm-up
    assert detect_warmup(values) == 4


def test_warmup_is_a_level_shift_followed_by_a_steady_leak() -> None:
    # GIVEN a 50 MiB jump at epoch 8 (cache filled) before a steady 1 MiB/epoch leak
    values = BASE + MiB * np.arange(40) + np.where(np.arange(40) >= 7, 50 * MiB, 0)
    # THEN the warm-up is the 7 epochs before the jump
    assert detect_warmup(values) == 7


def test_a_warmup_epoch_that_crosses_the_line_does_not_end_the_warmup() -> None:
    # GIVEN a warm-up that overshoots at epoch 2 (on the final level by chance) and settles from epoch 5
    values = np.r_[BASE, BASE + 40 * MiB, BASE + 20 * MiB, BASE + 30 * MiB, np.full(56, BASE + 40 * MiB)]
    # THEN the warm-up is all 4 unsettled epochs, not just the first
    assert detect_warmup(values) == 4


def test_an_isolated_spike_after_the_start_is_not_warmup() -> None:
    values = np.full(60, BASE)
    values[15] += 30 * MiB
    assert detect_warmup(values) == 0


def test_a_steady_leak_with_uneven_increments_has_no_warmup() -> None:
    # GIVEN the lists variant's recursion leak as recorded (12 epochs, ~24 MB per epoch, +-0.3 MB)
    values = [
        67022848,
        91197440,
        115924992,
        140533760,
        165044224,
        189501440,
        213708800,
        238383104,
        262852608,
        287289344,
        311762944,
        336211968,
    ]
    # THEN no epoch is taken for warm-up
    assert detect_warmup(values) == 0


def test_a_steady_leak_and_flat_noise_have_no_warmup() -> None:
    rng = np.random.default_rng(4)
    assert detect_warmup(leaking(30, 2 * MiB, rng)) == 0
    assert detect_warmup(flat(200, rng)) == 0


def test_warmup_never_takes_more_than_a_third() -> None:
    # GIVEN a level shift at epoch 26 of 60, after the first third
    values = np.r_[np.full(25, BASE), np.full(35, BASE + 10 * MiB)]
    # THEN warm-up stops at the cap (20 epochs) instead of reaching the shift
    assert detect_warmup(values) == 20


# --- verdicts on synthetic series -------------------------------------------------------------


def test_flat_with_noise_is_flat() -> None:
    growth = summarise_growth(table(flat(200, np.random.default_rng(5))))
    assert growth["verdict"] == "flat"
    assert growth["ci_high"] < MIN_BYTES_PER_EPOCH


def test_linear_growth_is_a_leak_with_its_slope() -> None:
    growth = summarise_growth(table(leaking(30, MiB, np.random.default_rng(6))))
    assert growth["verdict"] == "leak"
    assert growth["ci_low"] <= MiB <= growth["ci_high"] or growth["bytes_per_epoch"] == pytest.approx(MiB, rel=0.01)
    assert growth["p_value"] < 0.001


def test_step_then_flat_is_flat_after_the_step() -> None:
    rng = np.random.default_rng(7)
    values = flat(50, rng, sd=PAGE) + np.where(np.arange(50) >= 10, 50 * MiB, 0)
    growth = summarise_growth(table(values))
    assert (growth["verdict"], growth["warmup_epochs"]) == ("flat", 10)


def test_warmup_then_flat_is_flat() -> None:
    rng = np.random.default_rng(8)
    values = flat(60, rng, sd=PAGE) + pages(40 * MiB * (1 - np.exp(-np.arange(60) / 1.5)))
    growth = summarise_growth(table(values))
    assert growth["verdict"] == "flat"
    assert 5 <= growth["warmup_epochs"] <= 20


def test_a_64_kib_leak_is_found_within_50_epochs_and_measured_within_25_percent() -> None:
    for seed in range(20):
        # GIVEN 64 KiB/epoch under noise of 16 pages, after a 30 MiB warm-up in epochs 1-2
        rng = np.random.default_rng(100 + seed)
        values = leaking(50, 64 * KiB, rng, sd=16 * PAGE) + np.where(np.arange(50) >= 2, 30 * MiB, 0)
        growth = summarise_growth(table(values))
        assert growth["verdict"] == "leak", growth
        assert growth["bytes_per_epoch"] == pytest.approx(64 * KiB, rel=0.25)


def test_3000_flat_epochs_with_page_noise_are_flat() -> None:
    # GIVEN 3000 epochs moving by whole pages (the fixed numpy variant's long run)
    values = BASE + np.random.default_rng(9).integers(-2, 3, 3000) * PAGE
    growth = summarise_growth(table(values))
    assert growth["verdict"] == "flat"
    assert growth["pairs_sampled"] is True


def test_12_epochs_of_a_several_mib_leak_are_a_leak() -> None:
    growth = summarise_growth(table(leaking(12, 5 * MiB, np.random.default_rng(10), sd=256 * KiB)))
    assert growth["verdict"] == "leak"


def test_too_few_epochs_are_inconclusive_with_the_reason() -> None:
    growth = summarise_growth(table(BASE + MiB * np.arange(5)))
    assert growth["verdict"] == "inconclusive"
    assert growth["reason"] == "only 5 epochs; at least 6 are needed"
    assert growth["bytes_per_epoch"] == MiB  # the numbers are still reported


def test_no_epochs_are_inconclusive_without_numbers() -> None:
    growth = summarise_growth(table(np.array([], dtype=np.int64)))
    assert (growth["verdict"], growth["bytes_per_epoch"], growth["n_epochs_used"]) == ("inconclusive", None, 0)
    assert format_growth(growth) == "verdict: inconclusive: only 0 epochs; at least 6 are needed"


def test_a_slope_near_the_threshold_under_noise_is_inconclusive() -> None:
    # GIVEN 4 KiB/epoch (the threshold) for 20 epochs under noise of 8 pages
    growth = summarise_growth(table(leaking(20, MIN_BYTES_PER_EPOCH, np.random.default_rng(11), sd=8 * PAGE)))
    assert growth["verdict"] == "inconclusive"
    assert growth["ci_low"] < MIN_BYTES_PER_EPOCH < growth["ci_high"]


def test_significant_but_small_growth_is_flat() -> None:
    # GIVEN one page every epoch, exactly, like the high-water-mark creep of a short run
    values = BASE + np.arange(400) * PAGE
    growth = summarise_growth(table(values))
    assert growth["p_value"] < 1e-6
    assert growth["verdict"] == "flat"


def test_repeated_flat_runs_are_never_called_leaks() -> None:
    # GIVEN many short and long flat runs with page noise, occasional single pages kept, and a warm-up
    verdicts = set()
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        for n in (20, 300):
            creep = np.cumsum(rng.random(n) < 0.05) * PAGE
            values = flat(n, rng, sd=2 * PAGE) + creep + np.minimum(np.arange(n), 2) * 5 * MiB
            verdicts.add(summarise_growth(table(values))["verdict"])
    # THEN none is a leak
    assert "leak" not in verdicts


def test_the_threshold_is_a_parameter() -> None:
    values = leaking(100, 2 * KiB, np.random.default_rng(12), sd=PAGE)
    assert summarise_growth(table(values))["verdict"] == "flat"
    assert summarise_growth(table(values), min_bytes_per_epoch=512)["verdict"] == "leak"


def test_verdict_of_no_fit_is_inconclusive() -> None:
    assert verdict(None) == ("inconclusive", "only 0 epochs to fit; at least 6 are needed")


# --- heap, projection, serialisation ----------------------------------------------------------


def test_rss_growing_while_the_heap_is_flat_is_flagged_as_native() -> None:
    rng = np.random.default_rng(13)
    growth = summarise_growth(table(leaking(30, MiB, rng), heap=20 * MiB + rng.integers(0, 500, 30)))
    assert growth["heap"]["verdict"] == "flat"
    assert growth["native_growth"] is True
    assert "tracemalloc cannot see" in growth["note"]


def test_heap_growing_with_rss_is_not_flagged() -> None:
    rng = np.random.default_rng(14)
    growth = summarise_growth(table(leaking(30, MiB, rng), heap=20 * MiB + 0.9 * MiB * np.arange(30)))
    assert growth["heap"]["verdict"] == "leak"
    assert growth["heap"]["measure"] == "heap_bytes"
    assert (growth["native_growth"], growth["note"]) == (False, None)


def test_a_heap_leak_smaller_than_rss_growth_is_not_called_native() -> None:
    # GIVEN a traced run whose heap leaks 0.15 MiB/epoch while RSS (carrying tracemalloc's records) grows 1 MiB/epoch
    rng = np.random.default_rng(16)
    growth = summarise_growth(table(leaking(30, MiB, rng), heap=20 * MiB + 0.15 * MiB * np.arange(30)))
    # THEN tracemalloc can see the leak: not flagged as native, and the note says where the rest likely is
    assert growth["heap"]["verdict"] == "leak"
    assert growth["native_growth"] is False
    assert "tracemalloc's own bookkeeping" in growth["note"]


def test_without_heap_records_there_is_no_heap_analysis() -> None:
    growth = summarise_growth(table(leaking(30, MiB, np.random.default_rng(15))))
    assert (growth["heap"], growth["native_growth"]) == (None, None)
    no_column = summarise_growth(pd.DataFrame({"epoch": [1, 2, 3], "rss_bytes": [1, 2, 3]}))
    assert no_column["heap"] is None


def test_projection_finds_the_epoch_the_line_reaches_cap_and_machine() -> None:
    # GIVEN exactly 100 MiB + 1 MiB per epoch
    values = 100 * MiB + MiB * np.arange(1, 41)
    growth = summarise_growth(table(values), memory_cap_bytes=200 * MiB, memory_total_bytes=1 * GiB)
    # THEN the cap is reached at epoch 100 and 1 GiB at epoch 924
    assert growth["projection"] == {
        "memory_cap_bytes": 200 * MiB,
        "cap_epoch": 100,
        "memory_total_bytes": GiB,
        "memory_total_epoch": 924,
    }
    assert format_growth(growth) == (
        "verdict: leak, +1.0 MiB/epoch (95% CI 1.0-1.0 MiB) over 40 epochs after 0 warm-up epochs; "
        "reaches the 200.0 MiB cap at epoch ~100 and this machine's 1.0 GiB at epoch ~924"
    )
    # AND a cap one byte higher is reached one epoch later (the first epoch at or above it)
    assert summarise_growth(table(values), memory_cap_bytes=200 * MiB + 1)["projection"]["cap_epoch"] == 101


def test_no_projection_unless_leak() -> None:
    growth = summarise_growth(table(flat(50, np.random.default_rng(16))), memory_cap_bytes=GiB)
    assert growth["projection"] is None


def test_growth_dict_survives_json_with_plain_types() -> None:
    rng = np.random.default_rng(17)
    growth = summarise_growth(table(leaking(30, MiB, rng), heap=MiB * np.arange(30)), 4 * GiB, 16 * GiB)
    assert json.loads(json.dumps(growth)) == growth
    for key in ("verdict", "bytes_per_epoch", "ci_low", "ci_high", "warmup_epochs", "p_value", "n_epochs_used"):
        assert key in growth and key in growth["heap"]
    assert growth["measure"] == "rss_bytes"


def test_rows_out_of_order_repeated_or_unreadable_are_tolerated() -> None:
    # GIVEN a linear leak whose rows are shuffled, one repeated and one with a missing RSS
    frame = table(BASE + MiB * np.arange(1, 21)).astype({"rss_bytes": "Int64"})
    frame.loc[5, "rss_bytes"] = pd.NA
    frame = pd.concat([frame, frame.iloc[[3]]]).sample(frac=1, random_state=0)
    growth = summarise_growth(frame)
    assert (growth["verdict"], growth["bytes_per_epoch"], growth["n_epochs_used"]) == ("leak", MiB, 19)


def test_a_table_without_rss_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'rss_bytes'"):
        summarise_growth(pd.DataFrame({"epoch": [1, 2]}))


# --- text -------------------------------------------------------------------------------------


def test_format_growth_adds_the_heap_line_and_the_reason_when_inconclusive() -> None:
    # GIVEN RSS rising 33 KiB/epoch under a repeating 0-160 KiB pattern, and a heap rising 2 KiB/epoch
    epochs = np.arange(1, 31)
    rss = BASE + 33 * KiB * epochs + (epochs * 7 % 5) * 40 * KiB
    growth = summarise_growth(table(rss, heap=10 * MiB + 2 * KiB * (epochs - 1)))
    assert format_growth(growth) == (
        "verdict: inconclusive, +33.0 KiB/epoch (95% CI 29.7-34.7 KiB) over 30 epochs after 0 warm-up epochs; "
        "the 95% CI straddles the 32.0 KiB/epoch threshold\n"
        "Python heap: flat, +2.0 KiB/epoch (95% CI 2.0-2.0 KiB) over 30 epochs after 0 warm-up epochs"
    )


def test_exceeds_budget_only_when_the_growth_is_confidently_above_it() -> None:
    growth = summarise_growth(table(BASE + 3 * MiB * np.arange(1, 41)))
    assert exceeds_budget(growth, 64 * KiB) == (
        "RSS grew 3.0 MiB/epoch over 40 epochs (95% CI 3.0-3.0 MiB); budget 64.0 KiB/epoch"
    )
    assert exceeds_budget(growth, 4 * MiB) is None
    assert exceeds_budget(summarise_growth(table(np.full(40, BASE))), 0) is None


def test_a_budget_can_be_stricter_than_the_leak_threshold() -> None:
    # GIVEN a page per epoch exactly: flat by the verdict's threshold
    growth = summarise_growth(table(BASE + PAGE * np.arange(1, 31)))
    assert growth["verdict"] == "flat"
    # THEN a 1 KiB budget still catches it, a 4 KiB one does not
    assert (
        exceeds_budget(growth, KiB)
        == "RSS grew 4.0 KiB/epoch over 30 epochs (95% CI 4.0-4.0 KiB); budget 1.0 KiB/epoch"
    )
    assert exceeds_budget(growth, PAGE) is None


def test_exceeds_budget_needs_enough_epochs() -> None:
    # GIVEN 5 epochs of a steep rise THEN not even a zero budget is exceeded: too few to tell
    assert exceeds_budget(summarise_growth(table(BASE + MiB * np.arange(5))), 0) is None


def test_exceeds_budget_refuses_a_negative_budget() -> None:
    with pytest.raises(UsageError, match="budget"):
        exceeds_budget({"verdict": "flat"}, -1)
