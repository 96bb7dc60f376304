"""What a run is asked to do and how it ended: the checked request, the outcome, the default memory cap."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.errors import UsageError
from harness.interface import RunConfig
from harness.records import DEFAULT_MEASURE, MEASURE_COLUMNS
from harness.worker import gc_readings, tracing

DEFAULT_SAMPLE_INTERVAL_S = 0.05
MAX_DEFAULT_CAP = 4 * 1024**3


def default_memory_cap() -> int:
    """The smaller of 4 GiB and half of the memory available now."""
    return min(MAX_DEFAULT_CAP, psutil.virtual_memory().available // 2)


def memory_limit_for(cap: int) -> int:
    """The worker's RLIMIT_DATA backstop for a cap: twice the cap plus 1 GiB (see harness.worker)."""
    return 2 * cap + 1024**3


@dataclass(frozen=True)
class RunRequest:
    """Everything ``run`` needs; checks its fields (UsageError) before anything starts."""

    variant: str
    config: RunConfig
    results_dir: Path = Path("results")
    memory_cap_bytes: int | None = None  # None: default_memory_cap() when the run starts
    timeout_s: float | None = None
    sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S
    trace: bool = False
    trace_frames: int = tracing.FRAMES
    measure: str = DEFAULT_MEASURE  # the series the verdict judges: rss, tree-pss, tree-uss or heap
    gc_collect: str = gc_readings.DEFAULT_POLICY  # what the worker does to the collector before each reading

    def __post_init__(self) -> None:
        if not isinstance(self.variant, str) or not self.variant:
            raise UsageError("a variant is required: --variant NAME")
        if not isinstance(self.config, RunConfig):
            raise UsageError(f"config must be a RunConfig, got {type(self.config).__name__}")
        cap = self.memory_cap_bytes
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0):
            raise UsageError(f"memory cap must be a positive size, got {cap!r}")
        if self.timeout_s is not None and not (isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0):
            raise UsageError(f"timeout must be a positive number of seconds, got {self.timeout_s!r}")
        interval = self.sample_interval_s
        if not isinstance(interval, (int, float)) or not math.isfinite(interval) or not 0.001 <= interval <= 60:
            raise UsageError(f"sample interval must be between 0.001 and 60 seconds, got {interval!r}")
        frames = self.trace_frames
        if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= tracing.MAX_FRAMES:
            raise UsageError(f"trace frames must be a whole number from 1 to {tracing.MAX_FRAMES}, got {frames!r}")
        if self.measure not in MEASURE_COLUMNS:
            raise UsageError(f"invalid measure {self.measure!r}: expected one of {', '.join(MEASURE_COLUMNS)}")
        if self.gc_collect not in gc_readings.POLICIES:
            expected = ", ".join(gc_readings.POLICIES)
            raise UsageError(f"invalid gc-collect {self.gc_collect!r}: expected one of {expected}")
        if self.measure == "heap" and not self.trace:
            raise UsageError("measure heap needs --trace: the Python heap is recorded only when traced")
        object.__setattr__(self, "results_dir", Path(self.results_dir))


@dataclass(frozen=True)
class VariantCheck:
    """What the check worker found: the class's description and leaks."""

    description: str
    leaks: dict[str, str]


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended; ``meta`` is the final meta.json."""

    run_dir: Path
    status: str
    exit_code: int
    epochs_done: int
    stop: dict[str, Any] | None
    growth: dict[str, Any] | None
    meta: dict[str, Any] = field(repr=False)
