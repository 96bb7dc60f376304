"""`python -m harness bench` in-process: the plan's order, the arithmetic, the table and the worker's timing.

Speed is never asserted here: only that figures follow from the measured times.
The command in a subprocess and a failing child are in tests/integration/test_bench.py.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from harness import bench
from harness.bench import LOOP, MATMUL, RUN, Job, Outcome, Overhead, Report, Row, Spread
from harness.bench.child import time_epochs
from harness.errors import UsageError
from harness.interface import RunConfig

REGISTERED = ("lists", "generators", "numpy", "torch")


def plan_of(variants: list[str], **choices: object) -> bench.Plan:
    return bench.make_plan(variants, REGISTERED, **choices)  # type: ignore[arg-type]


def loop_outcome(job: Job, rate: float, flops: int | None = None) -> Outcome:
    """A loop job whose warm-up epochs took 1 s each and whose measured epochs ran at ``rate``, costing ``flops``."""
    epoch_s = [1.0] * job.warmup + [1.0 / rate] * job.epochs
    ends, total = [], 0.0
    for seconds in epoch_s:
        total += seconds
        ends.append(total)
    return Outcome(job, epoch_s=tuple(epoch_s), ends_s=tuple(ends), flops_per_epoch=flops)


def ends_in_turns(warmup: int, epochs: int, rate: float, pause_s: float = 0.03) -> tuple[float, ...]:
    """Ends of ``warmup`` 1 s epochs, then ``epochs`` at ``rate``, a pause of ``pause_s`` in every fourth."""
    ends, total = [], 0.0
    for index in range(warmup + epochs):
        total += 1.0 if index < warmup else 1.0 / rate + (pause_s if index % 4 == 3 else 0.0)
        ends.append(total)
    return tuple(ends)


def run_outcome(job: Job, bare_rate: float, run_rate: float) -> Outcome:
    """A run job: the run and its bare partner, taking turns (a pause in every fourth epoch of each)."""
    return Outcome(
        job,
        ends_s=ends_in_turns(job.warmup, job.epochs, run_rate),
        partner_ends_s=ends_in_turns(job.warmup, job.epochs, bare_rate),
    )


# -- the plan ----------------------------------------------------------------------------------


def test_jobs_interleave_the_variants_round_by_round_with_the_overhead_next_to_bare_numpy() -> None:
    # GIVEN numpy and lists over two rounds, with the overhead measured
    plan = plan_of(["numpy", "lists"], repeat=2)
    # WHEN the plan is laid out
    order = [(job.round, job.label) for job in plan.jobs()]
    # THEN each round runs every measurement once, A B A B, the run beside the bare loop, matmul last
    assert order == [
        (1, "numpy"),
        (1, "numpy in run"),
        (1, "lists"),
        (1, "matmul"),
        (2, "numpy"),
        (2, "numpy in run"),
        (2, "lists"),
        (2, "matmul"),
    ]


def test_default_epochs_keep_pure_python_short_and_overhead_follows_numpy() -> None:
    # GIVEN no --epochs, --warmup or --overhead
    with_numpy = plan_of(["lists", "numpy", "torch"])
    without = plan_of(["lists", "generators"])
    # THEN pure Python gets a few epochs, numpy and torch hundreds; overhead is on only with numpy
    assert with_numpy.epochs == {"lists": 3, "numpy": 500, "torch": 300}
    assert with_numpy.warmup == {"lists": 1, "numpy": 50, "torch": 20}
    assert with_numpy.overhead and not without.overhead
    # AND the baseline is numpy when benchmarked, else the first variant
    assert with_numpy.baseline == "numpy" and without.baseline == "lists"
    # AND --epochs/--warmup apply to every variant
    assert plan_of(["lists", "numpy"], epochs=7, warmup=0).epochs == {"lists": 7, "numpy": 7}


def test_loop_config_trains_warmup_plus_measured_epochs_and_only_torch_gets_the_thread_option() -> None:
    # GIVEN a plan on 2 threads, fc_only
    plan = plan_of(["numpy", "torch"], epochs=10, warmup=3, threads=2, fc_only=True)
    numpy_job, torch_job = (job for job in plan.jobs() if job.kind == LOOP and job.round == 1)
    # THEN both train 13 epochs fc_only; torch also sets its own threads
    assert plan.config(numpy_job) == RunConfig(epochs=13, options={"fc_only": True})
    assert plan.config(torch_job) == RunConfig(epochs=13, options={"fc_only": True, "threads": 2})


def test_child_environment_pins_every_thread_variable_and_leaves_openblas_tuning_alone() -> None:
    # GIVEN an environment with an OpenBLAS core type and a user's thread setting
    base = {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "8", "HOME": "/h"}
    # WHEN the children's environment is made for 1 thread
    environment = bench.child_environment(1, base)
    # THEN all three thread variables say 1 and the rest is untouched
    assert environment == base | {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert base["OMP_NUM_THREADS"] == "8"  # the caller's mapping is not modified


@pytest.mark.parametrize(
    ("variants", "choices", "message"),
    [
        (["numpy", "tensorflow"], {}, "unknown variant 'tensorflow'; accepted: lists, generators, numpy, torch"),
        (["numpy", "numpy"], {}, "variant 'numpy' is given more than once"),
        (["numpy"], {"epochs": 0}, "--epochs must be a positive whole number, got 0"),
        (["numpy"], {"repeat": -2}, "--repeat must be a positive whole number, got -2"),
        (["numpy"], {"threads": 0}, "--threads must be a positive whole number, got 0"),
        (["numpy"], {"warmup": -1}, "--warmup must be 0 or more epochs, got -1"),
        (["numpy", "lists"], {"baseline": "torch"}, "baseline 'torch' is not benchmarked; choose one of: numpy, lists"),
        (["lists"], {"overhead": True}, "--overhead measures numpy under `run`: add numpy to --variants"),
    ],
)
def test_bad_choices_are_one_line_usage_errors(variants: list[str], choices: dict[str, object], message: str) -> None:
    # WHEN the plan is made from a bad choice THEN a UsageError names it
    with pytest.raises(UsageError) as error:
        plan_of(variants, **choices)
    assert str(error.value) == message and error.value.exit_code == 2


# -- arithmetic ----------------------------------------------------------------------------------


def test_loop_rate_counts_only_the_epochs_after_the_warmup() -> None:
    # GIVEN a slow first epoch, then epochs of 0.5, 0.25 and 0.25 s
    epoch_s = [5.0, 0.5, 0.25, 0.25]
    # THEN after one warm-up epoch: 3 epochs in 1 s; without warm-up: 4 in 6 s
    assert bench.loop_rate(epoch_s, 1) == pytest.approx(3.0)
    assert bench.loop_rate(epoch_s, 0) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="no epochs after"):
        bench.loop_rate(epoch_s, 4)


def test_turn_rate_counts_the_time_between_epochs_and_leaves_out_the_pauses() -> None:
    # GIVEN epochs ending at 1, 2, 2.004, 2.006 and 2.008 s: the second's interval had a pause in it
    ends = [1.0, 2.0, 2.004, 2.006, 2.008]
    # THEN after one warm-up epoch, the 1 s interval is left out: 3 epochs in 8 ms (recording time included)
    assert bench.turn_rate(ends, 1, longest_s=0.0125) == pytest.approx(3 / 0.008)
    # AND without warm-up the first interval starts at 0 (the first epoch's start)
    assert bench.turn_rate([0.002, 0.004, 0.5, 0.502, 0.504], 0, longest_s=0.0125) == pytest.approx(4 / 0.008)
    # AND intervals a quarter of which are longer than half a turn are refused, not measured
    with pytest.raises(ValueError, match=r"2 of 4 epochs were longer than 12\.5 ms"):
        bench.turn_rate([1.0, 1.02, 1.04, 1.041, 1.042], 1, longest_s=0.0125)
    with pytest.raises(ValueError, match="no epochs after"):
        bench.turn_rate(ends, 5, longest_s=0.0125)


def test_spread_ratio_and_share() -> None:
    # GIVEN four rates THEN the median of an even count is the mean of the middle two, the range min-max
    assert Spread.of([3.0, 1.0, 10.0, 2.0]) == Spread(2.5, 1.0, 10.0)
    assert Spread.of([7.0]) == Spread(7.0, 7.0, 7.0)
    # AND 250 epochs/s against 1000 is a quarter; 1 MFLOP per epoch at 500 epochs/s on 1 GFLOP/s is half
    assert bench.ratio(250.0, 1000.0) == 0.25
    assert bench.share(1_000_000, 500.0, 1e9) == pytest.approx(0.5)


def test_summarise_takes_medians_over_rounds_and_relates_them_to_the_baseline_and_the_limit() -> None:
    # GIVEN three rounds of numpy (100, 400, 200 epochs/s), lists (1, 2, 4), numpy under run at 80% of bare,
    # and matmul rates 8, 10 and 9 GFLOP/s; 10 MFLOP per epoch
    plan = plan_of(["numpy", "lists"], repeat=3, epochs=4, warmup=1)
    rates = {"numpy": [100.0, 400.0, 200.0], "lists": [1.0, 2.0, 4.0]}
    limit = [8e9, 10e9, 9e9]
    outcomes = []
    for job in plan.jobs():
        if job.kind == MATMUL:
            outcomes.append(Outcome(job, flops_per_s=limit[job.round - 1]))
        elif job.kind == RUN:  # in turns: ten times faster epochs than numpy's row, for 1 ms epochs
            outcomes.append(run_outcome(job, 10 * rates["numpy"][job.round - 1], 8 * rates["numpy"][job.round - 1]))
        else:
            outcomes.append(loop_outcome(job, rates[str(job.variant)][job.round - 1], flops=10_000_000))
    # WHEN summarised
    report = bench.summarise(plan, outcomes, load_average=(1.0, 2.0))
    numpy_row, lists_row = report.rows
    # THEN each row has its rounds' rates and their median
    assert numpy_row.rates == pytest.approx((100.0, 400.0, 200.0))
    assert numpy_row.spread == Spread(200.0, 100.0, 400.0)
    assert lists_row.spread is not None and lists_row.spread.median == pytest.approx(2.0)
    # AND the ratio of medians to numpy's, GFLOP/s = 10 MFLOP x median, share against the median 9 GFLOP/s
    assert numpy_row.ratio == pytest.approx(1.0) and lists_row.ratio == pytest.approx(2.0 / 200.0)
    assert numpy_row.gflops == pytest.approx(2.0) and lists_row.gflops == pytest.approx(0.02)
    assert numpy_row.share == pytest.approx(2.0 / 9.0) and lists_row.share == pytest.approx(0.02 / 9.0)
    assert report.limit_spread == Spread(9e9, 8e9, 10e9)
    # AND the FLOPs per epoch the loops reported are the report's, being the same for both
    assert report.flops_per_epoch == 10_000_000 and numpy_row.flops_per_epoch == 10_000_000
    # AND the overhead pairs each round's run with the bare loop that took turns with it: 0.8 every round
    assert report.overhead is not None
    overhead = report.overhead.ratio
    assert (overhead.median, overhead.low, overhead.high) == pytest.approx((0.8, 0.8, 0.8))
    # AND the rates leave out the intervals a pause fell into (every fourth here), not the numpy row's
    assert report.overhead.bare == pytest.approx((1000.0, 4000.0, 2000.0))


def test_a_variant_that_cannot_be_imported_is_tried_once_and_reported_as_skipped() -> None:
    # GIVEN torch missing: its first measurement says skipped
    plan = plan_of(["numpy", "torch"], repeat=3, epochs=2, warmup=0, overhead=False)
    started: list[str] = []

    def measure(job: Job) -> Outcome:
        started.append(job.label)
        if job.variant == "torch":
            return Outcome(job, skipped="no module named 'torch'")
        if job.kind == MATMUL:
            return Outcome(job, flops_per_s=1e9)
        return loop_outcome(job, 100.0)

    seen: list[tuple[int, int]] = []
    # WHEN the plan runs
    outcomes = bench.execute_plan(plan, measure, lambda index, total, outcome: seen.append((index, total)))
    report = bench.summarise(plan, outcomes)
    # THEN torch is started once, the others every round, and progress hears of every job
    assert started.count("torch") == 1 and started.count("numpy") == 3 and started.count("matmul") == 3
    assert seen == [(index, 9) for index in range(1, 10)]
    # AND its row carries the reason and no figures
    torch_row = report.rows[1]
    assert torch_row.skipped == "no module named 'torch'" and torch_row.rates == () and torch_row.ratio is None
    assert re.search(r"^torch +skipped: no module named 'torch'$", bench.format_table(report), re.MULTILINE)


# -- the table -----------------------------------------------------------------------------------


GOLDEN_TABLE = """\
variant     epochs  epochs/s      min-max   vs numpy  GFLOP/s  of limit
numpy       50+500     1,050  1,000-1,100      1.00x       21     42.0%
torch       20+300     130.3  125.5-140.0     0.124x      2.6      5.2%
lists          1+3     0.825     0.8-0.85  0.000786x   0.0171    0.034%
generators  skipped: cannot import X
FLOPs per epoch: 20,000,000 (matrix products counted from the layer shapes, the same for every variant)
machine limit: float64 1024x1024 matmul on 1 thread: 50 GFLOP/s (min-max 48-52), 2,500 epochs/s at 100%
harness overhead: numpy under `run` 990.0 epochs/s vs bare 1,050: 0.900x (min-max 0.900-1.000; \
2,000 epochs each, taking turns every 20 ms on one CPU; wall time between epochs, recording included)
epochs = warm-up+measured; epochs/s = measured epochs / their train_epoch time, median of 3 interleaved rounds, \
each in a fresh process; 1 thread; load average (1 min) at start/end 2.50/3.25"""


def test_table_matches_the_golden_text() -> None:
    # GIVEN a report with a fast, a medium, a slow and a skipped variant
    report = Report(
        rows=(
            Row("numpy", 50, 500, (1000.0, 1100.0, 1050.0), ratio=1.0, gflops=21.0, share=0.42),
            Row("torch", 20, 300, (140.0, 125.5, 130.3), ratio=0.124, gflops=2.6, share=0.052),
            Row("lists", 1, 3, (0.85, 0.8), ratio=0.000786, gflops=0.0171, share=0.000342),
            Row("generators", 1, 3, skipped="cannot import X"),
        ),
        baseline="numpy",
        threads=1,
        repeat=3,
        fc_only=False,
        flops_per_epoch=20_000_000,
        limit=(50e9, 48e9, 52e9),
        overhead=Overhead(bare=(1000.0, 1100.0, 1050.0), in_run=(900.0, 990.0, 1050.0)),
        load_average=(2.5, 3.25),
    )
    # WHEN formatted THEN it is exactly the golden text
    assert bench.format_table(report) == GOLDEN_TABLE


def test_report_json_carries_a_schema_version_and_every_rounds_figures() -> None:
    # GIVEN a one-row report WHEN made JSON-ready
    report = Report(
        rows=(Row("numpy", 5, 10, (10.0, 30.0, 20.0), ratio=1.0, gflops=0.2, share=0.1),),
        baseline="numpy",
        threads=1,
        repeat=3,
        fc_only=False,
        flops_per_epoch=10**7,
        limit=(2e9, 2e9, 2e9),
    )
    data = json.loads(json.dumps(bench.report_to_dict(report)))
    # THEN it keeps the per-round rates, their median and range, and says which schema it is
    assert data["schema_version"] == bench.SCHEMA_VERSION
    assert (data["variants"][0]["median"], data["variants"][0]["min"], data["variants"][0]["max"]) == (20.0, 10.0, 30.0)
    assert data["variants"][0]["epochs_per_s"] == [10.0, 30.0, 20.0] and data["overhead"] is None


def test_the_worker_times_each_epoch_and_its_end_from_the_first_start() -> None:
    # GIVEN a loop whose epochs take 1, 2 and 3 ticks of a fake clock whose every reading takes half a tick
    now = [0.0]

    class Loop:
        def __init__(self, config: RunConfig) -> None: ...

        def train_epoch(self, epoch: int) -> dict[str, float]:
            now[0] += epoch
            return {}

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    # WHEN three epochs are timed
    epoch_s, ends_s = time_epochs(Loop(RunConfig()), 3, clock)
    # THEN each epoch's time includes one reading; the ends count from the first reading (t=0.5),
    # so the reading between one epoch's end and the next one's start shows in the ends only
    assert epoch_s == [1.5, 2.5, 3.5]
    assert ends_s == [2.0, 5.0, 9.0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmRSS from /proc")
def test_footprint_measures_the_worker_before_its_loop_against_python_and_numpy() -> None:
    # GIVEN fresh interpreters: bare, with NumPy, and with what the trainer imports before the loop
    # WHEN their RSS is measured once each
    footprint = bench.measure_footprint(bench.child_environment(1), repeats=1)
    # THEN NumPy weighs on Python, the worker has loaded neither pandas nor matplotlib (nor NumPy)
    assert footprint is not None
    assert footprint.numpy > footprint.python > 0 and footprint.worker > footprint.python
    assert not {"pandas", "matplotlib", "numpy"} & set(footprint.worker_loaded)
    # AND the bench prints it as one line, and saves it in its JSON
    line = bench.footprint_line(footprint)
    assert line.startswith("worker baseline RSS (harness loaded, before the loop is built): ")
    assert "numpy not loaded, no pandas or matplotlib" in line
    assert footprint.to_dict()["worker_rss_bytes"] == footprint.worker


def test_footprint_line_names_a_heavy_library_the_worker_loaded() -> None:
    # GIVEN a worker that (wrongly) loaded pandas
    footprint = bench.Footprint(python=10 << 20, numpy=26 << 20, worker=90 << 20, worker_loaded=("numpy", "pandas"))
    # THEN the line says so
    assert "(numpy loaded, it has loaded pandas)" in bench.footprint_line(footprint)
