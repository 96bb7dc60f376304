"""What ``python -m harness bench`` measures: the jobs of a plan, in interleaved order.

In each round every variant's bare loop runs once (then numpy under ``run``,
taking turns with another bare loop, when the overhead is measured), then the
matrix-multiply rate, so drift on a shared machine hits all alike.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError
from harness.interface import RunConfig

LOOP, RUN, MATMUL = "loop", "run", "matmul"
THREAD_OPTIONS = {"torch": "threads"}  # variants that also set their own thread count, from this option
OVERHEAD_VARIANT = "numpy"

# Measured epochs and warm-up epochs per variant: about a second of training per job
# (numpy ~1100 epochs/s, numba ~1500, torch ~200, lists and generators 0.5-2 s per epoch, on one thread here).
DEFAULT_EPOCHS = {"numpy": 500, "numba": 500, "torch": 300, "lists": 3, "generators": 3}
DEFAULT_WARMUP = {"numpy": 50, "numba": 50, "torch": 20, "lists": 1, "generators": 1}
FALLBACK_EPOCHS, FALLBACK_WARMUP = 20, 2
# The overhead: numpy under `run` and a bare loop taking turns (harness.bench.turns), whatever --epochs says.
# Fewer epochs cannot resolve 1 %: bare against bare in turns, 500 epochs agreed within 3 %, 2,000 within 1-2 %.
OVERHEAD_EPOCHS, OVERHEAD_WARMUP = 2000, 50
MATMUL_SIZE, MATMUL_REPEATS = 1024, 5


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
                    order.append(Job(RUN, round_, variant, warmup=OVERHEAD_WARMUP, epochs=OVERHEAD_EPOCHS))
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
