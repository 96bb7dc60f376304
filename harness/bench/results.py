"""The bench's figures: pure functions of what the jobs returned.

- epochs/s of a job: measured epochs / the sum of their ``train_epoch`` times,
  after the warm-up epochs;
- per variant: the median over rounds, the spread as min-max, the ratio of the
  medians to the baseline's;
- the limit: the median over rounds of the best float64 matmul rate in a child
  with the same threads; share = FLOPs per epoch x epochs/s / limit;
- the harness's overhead: numpy's epochs/s under ``run`` against a bare loop
  that took turns with it on one CPU (:mod:`~harness.bench.turns`), both from
  the wall time between one epoch's end and the next (so the recording between
  epochs counts), as the median of each round's ratio.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.bench.footprint import Footprint
from harness.bench.plan import (
    LOOP,
    MATMUL,
    MATMUL_SIZE,
    RUN,
    Job,
    Plan,
)
from harness.bench.turns import TURN_S


@dataclass(frozen=True)
class Outcome:
    """What one job measured: epoch times (loops), a FLOP rate (matmul), or why the variant is skipped."""

    job: Job
    epoch_s: tuple[float, ...] = ()  # every epoch's train_epoch time, warm-up included
    ends_s: tuple[float, ...] = ()  # each epoch's end, in seconds from the first epoch's start
    flops_per_s: float | None = None
    skipped: str | None = None
    flops_per_epoch: int | None = None  # what the loop says an epoch costs (loops only; None when it does not say)
    partner_ends_s: tuple[float, ...] = ()  # run jobs: the ends of the bare loop that took turns with the run


def loop_rate(epoch_s: Sequence[float], warmup: int) -> float:
    """Epochs per second of the epochs after the warm-up, from their own train_epoch times."""
    measured = epoch_s[warmup:]
    if not measured:
        raise ValueError(f"no epochs after a warm-up of {warmup}")
    return len(measured) / sum(measured)


def turn_rate(ends_s: Sequence[float], warmup: int, longest_s: float) -> float:
    """Epochs per second of a loop that took turns: from each epoch's end to the next, after the warm-up.

    An interval longer than ``longest_s`` (half a turn) had a pause in it and is
    left out; ValueError when that leaves out a quarter of them or more (epochs
    too long for the turns).
    """
    if len(ends_s) <= warmup:
        raise ValueError(f"no epochs after a warm-up of {warmup}")
    points = [*ends_s[warmup - 1 :]] if warmup else [0.0, *ends_s]  # epoch 1 starts at 0
    intervals = [end - before for before, end in itertools.pairwise(points)]
    kept = [interval for interval in intervals if interval <= longest_s]
    if len(kept) < 0.75 * len(intervals):
        raise ValueError(
            f"{len(intervals) - len(kept)} of {len(intervals)} epochs were longer than {longest_s * 1e3:g} ms:"
            " too long to take turns"
        )
    return len(kept) / sum(kept)


def pair_rates(outcome: Outcome) -> tuple[float, float]:
    """A run job's (run, bare) epochs/s, each from its turns (:func:`turn_rate`, pauses of half a turn or more out)."""
    warmup = outcome.job.warmup
    return turn_rate(outcome.ends_s, warmup, TURN_S / 2), turn_rate(outcome.partner_ends_s, warmup, TURN_S / 2)


@dataclass(frozen=True)
class Spread:
    """Median and range of one figure over the rounds."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The median, minimum and maximum of ``values`` (at least one)."""
        return cls(statistics.median(values), min(values), max(values))


def ratio(value: float, baseline: float) -> float:
    """value / baseline: how many times the baseline's speed."""
    return value / baseline


def share(flops_per_epoch: int, epochs_per_s: float, limit_flops_per_s: float) -> float:
    """The fraction of the machine's FLOP rate that a loop's arithmetic runs at."""
    return flops_per_epoch * epochs_per_s / limit_flops_per_s


@dataclass(frozen=True)
class Row:
    """One variant's line of the table."""

    variant: str
    warmup: int
    epochs: int
    rates: tuple[float, ...] = ()  # epochs/s, one per round
    skipped: str | None = None
    ratio: float | None = None  # median / the baseline's median
    gflops: float | None = None  # None when the loop does not say its FLOPs per epoch
    share: float | None = None
    flops_per_epoch: int | None = None

    @property
    def spread(self) -> Spread | None:
        """Median and min-max of the rates; None when skipped."""
        return Spread.of(self.rates) if self.rates else None


@dataclass(frozen=True)
class Overhead:
    """numpy under ``run`` against the bare loop, per round."""

    bare: tuple[float, ...]
    in_run: tuple[float, ...]

    @property
    def ratio(self) -> Spread:
        """Each round's in-run / bare rate: median and range."""
        return Spread.of([run / bare for run, bare in zip(self.in_run, self.bare, strict=True)])


@dataclass(frozen=True)
class Report:
    """Everything the table and the JSON file show."""

    rows: tuple[Row, ...]
    baseline: str
    threads: int
    repeat: int
    fc_only: bool
    flops_per_epoch: int | None  # the same for every measured variant (the seed's network), else None
    limit: tuple[float, ...]  # matmul FLOP/s, one per round
    overhead: Overhead | None = None
    load_average: tuple[float, ...] = ()  # 1-minute load at the start and at the end
    matmul_size: int = MATMUL_SIZE
    footprint: Footprint | None = None  # the worker's RSS before its loop, with the overhead

    @property
    def limit_spread(self) -> Spread:
        """The matmul rate over rounds."""
        return Spread.of(self.limit)


def summarise(plan: Plan, outcomes: Sequence[Outcome], load_average: Sequence[float] = ()) -> Report:
    """The report of a finished plan (pure: every figure comes from ``outcomes``)."""
    limit = tuple(o.flops_per_s for o in outcomes if o.job.kind == MATMUL and o.flops_per_s is not None)
    limit_median = statistics.median(limit)
    rates: dict[str, list[float]] = {v: [] for v in plan.variants}
    flops: dict[str, int] = {}
    skipped: dict[str, str] = {}
    bare: dict[int, float] = {}
    in_run: dict[int, float] = {}
    for outcome in outcomes:
        job = outcome.job
        if job.variant is None:
            continue
        if outcome.skipped is not None:
            skipped.setdefault(job.variant, outcome.skipped)
        elif job.kind == LOOP:
            rates[job.variant].append(loop_rate(outcome.epoch_s, job.warmup))
            if outcome.flops_per_epoch is not None:
                flops[job.variant] = outcome.flops_per_epoch
        elif job.kind == RUN:
            in_run[job.round], bare[job.round] = pair_rates(outcome)
    base = statistics.median(rates[plan.baseline]) if rates[plan.baseline] else None
    rows = []
    for variant in plan.variants:
        warmup, epochs = plan.warmup[variant], plan.epochs[variant]
        if variant in skipped or not rates[variant]:
            rows.append(Row(variant, warmup, epochs, skipped=skipped.get(variant, "not measured")))
            continue
        median = statistics.median(rates[variant])
        count = flops.get(variant)
        rows.append(
            Row(
                variant,
                warmup,
                epochs,
                rates=tuple(rates[variant]),
                ratio=ratio(median, base) if base is not None else None,
                gflops=None if count is None else count * median / 1e9,
                share=None if count is None else share(count, median, limit_median),
                flops_per_epoch=count,
            )
        )
    rounds = sorted(set(bare) & set(in_run))
    overhead = Overhead(tuple(bare[r] for r in rounds), tuple(in_run[r] for r in rounds)) if rounds else None
    return Report(
        rows=tuple(rows),
        baseline=plan.baseline,
        threads=plan.threads,
        repeat=plan.repeat,
        fc_only=plan.fc_only,
        flops_per_epoch=next(iter(set(flops.values()))) if len(set(flops.values())) == 1 else None,
        limit=limit,
        overhead=overhead,
        load_average=tuple(load_average),
    )
