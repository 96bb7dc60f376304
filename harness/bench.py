"""What ``python -m harness bench`` measures and how it adds up: the plan, one job at a time, the table.

A plan is a list of jobs in interleaved order: in each round every variant's
bare loop once (numpy's run under ``run`` right after it when the overhead is
measured), then the matrix-multiply rate, so drift on a shared machine hits
all alike.  Each job is a fresh child process with the thread variables set in
its environment before NumPy or torch is imported.

The figures are pure functions of what the jobs return:

- epochs/s of a job: measured epochs / the sum of their ``train_epoch`` times,
  after the warm-up epochs;
- per variant: the median over rounds, the spread as min-max, the ratio of the
  medians to the baseline's;
- the limit: the median over rounds of the best float64 matmul rate in a child
  with the same threads; share = FLOPs per epoch x epochs/s / limit;
- the harness's overhead: numpy's epochs/s under ``run`` against the bare loop,
  both over the wall time from the end of the warm-up to the last epoch (so the
  recording between epochs counts), as the median of each round's ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.interface import SEED_BATCH_SIZE, RunConfig

SCHEMA_VERSION = 1  # the --json file; 1: first version

LOOP, RUN, MATMUL = "loop", "run", "matmul"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
THREAD_OPTIONS = {"torch": "threads"}  # variants that also set their own thread count, from this option
OVERHEAD_VARIANT = "numpy"

# Measured epochs and warm-up epochs per variant: about a second of training per job
# (numpy ~1000 epochs/s, torch ~140, lists and generators 0.5-2 s per epoch, on one thread here).
DEFAULT_EPOCHS = {"numpy": 500, "torch": 300, "lists": 3, "generators": 3}
DEFAULT_WARMUP = {"numpy": 50, "torch": 20, "lists": 1, "generators": 1}
FALLBACK_EPOCHS, FALLBACK_WARMUP = 20, 2
MATMUL_SIZE, MATMUL_REPEATS = 1024, 5
JOB_TIMEOUT_S = 600.0


class MeasurementError(Exception):
    """A job failed (the training code raised, or the child crashed): the bench cannot continue."""


# -- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One measurement in one fresh child: a bare loop, numpy under ``run``, or the matmul rate."""

    kind: str
    round: int  # from 1
    variant: str | None = None  # None for the matmul rate
    warmup: int = 0
    epochs: int = 0  # measured epochs, after the warm-up

    @property
    def label(self) -> str:
        """The job's name in progress lines: "numpy", "numpy in run" or "matmul"."""
        if self.kind == MATMUL:
            return "matmul"
        return f"{self.variant} in run" if self.kind == RUN else str(self.variant)


@dataclass(frozen=True)
class Plan:
    """What to measure; :func:`make_plan` checks the user's choices."""

    variants: tuple[str, ...]
    epochs: Mapping[str, int]
    warmup: Mapping[str, int]
    repeat: int
    baseline: str
    threads: int = 1
    fc_only: bool = False
    overhead: bool = False

    def jobs(self) -> list[Job]:
        """Every job in order: round by round, each variant once, then the matmul rate."""
        order = []
        for round_ in range(1, self.repeat + 1):
            for variant in self.variants:
                size = {"warmup": self.warmup[variant], "epochs": self.epochs[variant]}
                order.append(Job(LOOP, round_, variant, **size))
                if self.overhead and variant == OVERHEAD_VARIANT:
                    order.append(Job(RUN, round_, variant, **size))  # adjacent: the pair sees the same load
            order.append(Job(MATMUL, round_))
        return order

    def config(self, job: Job) -> RunConfig:
        """The run configuration of a loop job: warm-up and measured epochs, fc_only, the thread option."""
        assert job.variant is not None
        options: dict[str, Any] = {"fc_only": True} if self.fc_only else {}
        if job.variant in THREAD_OPTIONS:
            options[THREAD_OPTIONS[job.variant]] = self.threads
        return RunConfig(epochs=job.warmup + job.epochs, options=options)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be a positive whole number, got {value}")


def make_plan(
    variants: Sequence[str],
    registered: Collection[str],
    *,
    epochs: int | None = None,
    warmup: int | None = None,
    repeat: int = 5,
    baseline: str | None = None,
    threads: int = 1,
    fc_only: bool = False,
    overhead: bool | None = None,
) -> Plan:
    """Check the choices (UsageError, one line) and fill in per-variant epochs and warm-up."""
    if not variants:
        raise UsageError("no variants given; accepted: " + ", ".join(registered))
    for name in variants:
        if name not in registered:
            raise UsageError(f"unknown variant {name!r}; accepted: {', '.join(registered)}")
        if variants.count(name) > 1:
            raise UsageError(f"variant {name!r} is given more than once")
    _positive("--epochs", epochs)
    _positive("--repeat", repeat)
    _positive("--threads", threads)
    if warmup is not None and warmup < 0:
        raise UsageError(f"--warmup must be 0 or more epochs, got {warmup}")
    if baseline is None:
        baseline = OVERHEAD_VARIANT if OVERHEAD_VARIANT in variants else variants[0]
    elif baseline not in variants:
        raise UsageError(f"baseline {baseline!r} is not benchmarked; choose one of: {', '.join(variants)}")
    if overhead and OVERHEAD_VARIANT not in variants:
        raise UsageError(f"--overhead measures {OVERHEAD_VARIANT} under `run`: add {OVERHEAD_VARIANT} to --variants")
    return Plan(
        variants=tuple(variants),
        epochs={v: epochs if epochs is not None else DEFAULT_EPOCHS.get(v, FALLBACK_EPOCHS) for v in variants},
        warmup={v: warmup if warmup is not None else DEFAULT_WARMUP.get(v, FALLBACK_WARMUP) for v in variants},
        repeat=repeat,
        baseline=baseline,
        threads=threads,
        fc_only=fc_only,
        overhead=OVERHEAD_VARIANT in variants if overhead is None else overhead,
    )


# -- what a job returns, and the arithmetic -------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one job measured: epoch times (loops), a FLOP rate (matmul), or why the variant is skipped."""

    job: Job
    epoch_s: tuple[float, ...] = ()  # every epoch's train_epoch time, warm-up included
    ends_s: tuple[float, ...] = ()  # each epoch's end, in seconds from the first epoch's start
    flops_per_s: float | None = None
    skipped: str | None = None


def loop_rate(epoch_s: Sequence[float], warmup: int) -> float:
    """Epochs per second of the epochs after the warm-up, from their own train_epoch times."""
    measured = epoch_s[warmup:]
    if not measured:
        raise ValueError(f"no epochs after a warm-up of {warmup}")
    return len(measured) / sum(measured)


def span_rate(ends_s: Sequence[float], warmup: int) -> float:
    """Epochs per second over the wall time from the end of the warm-up to the end of the last epoch."""
    if len(ends_s) <= warmup:
        raise ValueError(f"no epochs after a warm-up of {warmup}")
    start = ends_s[warmup - 1] if warmup else 0.0
    return (len(ends_s) - warmup) / (ends_s[-1] - start)


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


def flops_per_epoch(batch_size: int = SEED_BATCH_SIZE, fc_only: bool = False) -> int:
    """FLOPs of one epoch of the seed's network and data, counted from the layer shapes."""
    # Imported here: NumPy is only needed once the figures are made.
    from variants.buffers_flops import epoch_flops
    from variants.data import TEST_PER_CLASS, TRAIN_PER_CLASS
    from variants.network import CLASSES

    train, test = TRAIN_PER_CLASS * CLASSES, TEST_PER_CLASS * CLASSES
    sizes = [min(batch_size, train - start) for start in range(0, train, batch_size)]
    return epoch_flops(sizes, test, fc_only=fc_only)


@dataclass(frozen=True)
class Row:
    """One variant's line of the table."""

    variant: str
    warmup: int
    epochs: int
    rates: tuple[float, ...] = ()  # epochs/s, one per round
    skipped: str | None = None
    ratio: float | None = None  # median / the baseline's median
    gflops: float | None = None
    share: float | None = None

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
    flops_per_epoch: int
    limit: tuple[float, ...]  # matmul FLOP/s, one per round
    overhead: Overhead | None = None
    load_average: tuple[float, ...] = ()  # 1-minute load at the start and at the end
    matmul_size: int = MATMUL_SIZE

    @property
    def limit_spread(self) -> Spread:
        """The matmul rate over rounds."""
        return Spread.of(self.limit)


def summarise(plan: Plan, outcomes: Sequence[Outcome], flops: int, load_average: Sequence[float] = ()) -> Report:
    """The report of a finished plan (pure: every figure comes from ``outcomes``)."""
    limit = tuple(o.flops_per_s for o in outcomes if o.job.kind == MATMUL and o.flops_per_s is not None)
    limit_median = statistics.median(limit)
    rates: dict[str, list[float]] = {v: [] for v in plan.variants}
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
            if job.variant == OVERHEAD_VARIANT:
                bare[job.round] = span_rate(outcome.ends_s, job.warmup)
        elif job.kind == RUN:
            in_run[job.round] = span_rate(outcome.ends_s, job.warmup)
    base = statistics.median(rates[plan.baseline]) if rates[plan.baseline] else None
    rows = []
    for variant in plan.variants:
        warmup, epochs = plan.warmup[variant], plan.epochs[variant]
        if variant in skipped or not rates[variant]:
            rows.append(Row(variant, warmup, epochs, skipped=skipped.get(variant, "not measured")))
            continue
        median = statistics.median(rates[variant])
        rows.append(
            Row(
                variant,
                warmup,
                epochs,
                rates=tuple(rates[variant]),
                ratio=ratio(median, base) if base is not None else None,
                gflops=flops * median / 1e9,
                share=share(flops, median, limit_median),
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
        flops_per_epoch=flops,
        limit=limit,
        overhead=overhead,
        load_average=tuple(load_average),
    )


# -- the table ------------------------------------------------------------------------------------


def format_rate(value: float) -> str:
    """Epochs/s to four significant figures at most: "1,013", "136.3", "0.853"."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_times(value: float) -> str:
    """A ratio: "1,163x", "11.5x", "7.43x", "1.00x", "0.134x", "0.00135x"."""
    if value >= 100:
        return f"{value:,.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x" if value >= 1 else f"{value:.3g}x"


def _percent(value: float) -> str:
    return f"{100 * value:.3g}%"


HEADER = ("variant", "epochs", "epochs/s", "min-max", "vs {baseline}", "GFLOP/s", "of limit")


def format_table(report: Report) -> str:
    """The table, then the limit, overhead and method lines; no trailing newline."""
    header = [name.format(baseline=report.baseline) for name in HEADER]
    cells: list[list[str]] = []
    skipped: list[tuple[str, str]] = []
    for row in report.rows:
        spread = row.spread
        if row.skipped is not None or spread is None:
            skipped.append((row.variant, row.skipped or "not measured"))
            continue
        cells.append(
            [
                row.variant,
                f"{row.warmup}+{row.epochs}",
                format_rate(spread.median),
                f"{format_rate(spread.low)}-{format_rate(spread.high)}",
                format_times(row.ratio) if row.ratio is not None else "-",
                f"{row.gflops:.3g}" if row.gflops is not None else "-",
                _percent(row.share) if row.share is not None else "-",
            ]
        )
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    widths[0] = max(len(name) for name in [header[0], *(row.variant for row in report.rows)])

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        return "  ".join([first, *(value.rjust(width) for value, width in zip(values[1:], widths[1:]))]).rstrip()

    lines = [line(header), *(line(values) for values in cells)]
    lines += [f"{variant.ljust(widths[0])}  skipped: {reason}" for variant, reason in skipped]
    lines += footer_lines(report)
    return "\n".join(lines)


def footer_lines(report: Report) -> list[str]:
    """The lines under the table: FLOPs, the machine limit, the overhead, how it was measured."""
    limit = report.limit_spread
    size = report.matmul_size
    threads = f"{report.threads} thread{'s' if report.threads != 1 else ''}"
    lines = [
        (
            f"FLOPs per epoch: {report.flops_per_epoch:,} (matrix products counted from the layer shapes,"
            f" the same for every variant{'; fc_only' if report.fc_only else ''})"
        ),
        (
            f"machine limit: float64 {size}x{size} matmul on {threads}: {limit.median / 1e9:.3g} GFLOP/s"
            f" (min-max {limit.low / 1e9:.3g}-{limit.high / 1e9:.3g}),"
            f" {format_rate(limit.median / report.flops_per_epoch)} epochs/s at 100%"
        ),
    ]
    if report.overhead is not None:
        bare, in_run = Spread.of(report.overhead.bare), Spread.of(report.overhead.in_run)
        overhead = report.overhead.ratio
        lines.append(
            f"harness overhead: {OVERHEAD_VARIANT} under `run` {format_rate(in_run.median)} epochs/s"
            f" vs bare {format_rate(bare.median)}: {overhead.median:.3f}x"
            f" (min-max {overhead.low:.3f}-{overhead.high:.3f}; wall time after the warm-up, recording included)"
        )
    load = "/".join(f"{value:.2f}" for value in report.load_average) or "unknown"
    lines.append(
        f"epochs = warm-up+measured; epochs/s = measured epochs / their train_epoch time, median of"
        f" {report.repeat} interleaved round{'s' if report.repeat != 1 else ''}, each in a fresh process; {threads}; load average (1 min) at start/end {load}"
    )
    return lines


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data, with :data:`SCHEMA_VERSION`."""
    rows = []
    for row in report.rows:
        spread = row.spread
        rows.append(
            {
                "variant": row.variant,
                "warmup_epochs": row.warmup,
                "epochs": row.epochs,
                "skipped": row.skipped,
                "epochs_per_s": list(row.rates),
                "median": spread.median if spread else None,
                "min": spread.low if spread else None,
                "max": spread.high if spread else None,
                "ratio_to_baseline": row.ratio,
                "gflops_per_s": row.gflops,
                "share_of_limit": row.share,
            }
        )
    overhead = None
    if report.overhead is not None:
        overhead = {
            "variant": OVERHEAD_VARIANT,
            "bare_epochs_per_s": list(report.overhead.bare),
            "run_epochs_per_s": list(report.overhead.in_run),
            "ratio_median": report.overhead.ratio.median,
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "baseline": report.baseline,
        "threads": report.threads,
        "repeat": report.repeat,
        "fc_only": report.fc_only,
        "flops_per_epoch": report.flops_per_epoch,
        "matmul_size": report.matmul_size,
        "limit_flops_per_s": list(report.limit),
        "load_average": list(report.load_average),
        "variants": rows,
        "overhead": overhead,
    }


# -- running the plan ---------------------------------------------------------------------------


def execute_plan(
    plan: Plan, measure: Callable[[Job], Outcome], on_done: Callable[[int, int, Outcome], None] | None = None
) -> list[Outcome]:
    """Run every job in order with ``measure``; a variant skipped once is not started again."""
    jobs = plan.jobs()
    skipped: dict[str, str] = {}
    outcomes = []
    for index, job in enumerate(jobs, start=1):
        if job.variant in skipped:
            outcome = Outcome(job, skipped=skipped[job.variant])
        else:
            outcome = measure(job)
            if outcome.skipped is not None and job.variant is not None:
                skipped[job.variant] = outcome.skipped
        outcomes.append(outcome)
        if on_done is not None:
            on_done(index, len(jobs), outcome)
    return outcomes


def child_environment(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment) with every thread variable set to ``threads``."""
    environment = dict(os.environ if base is None else base)
    environment.update({name: str(threads) for name in THREAD_VARIABLES})
    return environment


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set os.environ for children started inside (runner.execute has no env argument); restore after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Measurer:
    """Runs one job in a fresh child: ``python -m harness.bench_worker``, or the real runner for RUN jobs."""

    plan: Plan
    results_dir: Path  # run directories of the overhead jobs (a temporary directory)
    timeout_s: float = JOB_TIMEOUT_S
    environment: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.environment = child_environment(self.plan.threads)

    def __call__(self, job: Job) -> Outcome:
        """Measure ``job``; MeasurementError when it fails."""
        if job.kind == RUN:
            return self._in_run(job)
        payload: dict[str, Any] = {"kind": job.kind}
        if job.kind == MATMUL:
            payload |= {"size": MATMUL_SIZE, "repeats": MATMUL_REPEATS}
        else:
            payload |= {"variant": job.variant, "config": self.plan.config(job).to_dict()}
        message = self._child(job, payload)
        if message["type"] == "skipped":
            return Outcome(job, skipped=str(message["reason"]))
        if job.kind == MATMUL:
            return Outcome(job, flops_per_s=float(message["flops_per_s"]))
        return Outcome(job, epoch_s=tuple(message["epoch_s"]), ends_s=tuple(message["ends_s"]))

    def _child(self, job: Job, payload: dict[str, Any]) -> dict[str, Any]:
        # The child's messages go to a file of their own (never blocks, however long), its output to another.
        with tempfile.TemporaryFile() as channel, tempfile.TemporaryFile() as log:
            command = [sys.executable, "-m", "harness.bench_worker", "--fd", str(channel.fileno()), json.dumps(payload)]
            try:
                done = subprocess.run(
                    command, pass_fds=(channel.fileno(),), env=self.environment, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log, timeout=self.timeout_s, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise MeasurementError(
                    f"{job.label} (round {job.round}) took longer than {self.timeout_s:g} s"
                ) from None
            channel.seek(0)
            lines = channel.read().decode(errors="replace").splitlines()
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
        message: dict[str, Any] = json.loads(lines[-1]) if lines else {"type": "error", "message": ""}
        if message["type"] == "error" or done.returncode != 0:
            detail = message.get("message") or (tail[0] if tail else f"the child exited with status {done.returncode}")
            raise MeasurementError(f"{job.label} (round {job.round}) failed: {detail}")
        return message

    def _in_run(self, job: Job) -> Outcome:
        # The recording side: only needed for the overhead.
        from harness import records, runner, storage

        request = runner.RunRequest(
            variant=str(job.variant), config=self.plan.config(job), results_dir=self.results_dir
        )
        with _environment({name: self.environment[name] for name in THREAD_VARIABLES}):
            outcome = runner.execute(request, handle_signals=False)
        if outcome.status != records.COMPLETED:
            message = (outcome.stop or {}).get("message", "")
            raise MeasurementError(f"{job.label} (round {job.round}) ended {outcome.status}: {message}")
        epochs = storage.load_run(outcome.run_dir).epochs
        return Outcome(job, epoch_s=tuple(map(float, epochs["epoch_s"])), ends_s=tuple(map(float, epochs["elapsed_s"])))
