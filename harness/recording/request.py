"""What a run is asked to do and how it ended: the checked request, the outcome, the default memory cap."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.errors import UsageError
from harness.interface import RunConfig
from harness.records import DEFAULT_MEASURE, LOOP, MARKS, MEASURE_COLUMNS, WINDOWS
from harness.scripts import DEFAULT_WINDOW_S, Script
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
    """Everything ``run`` needs; checks its fields (UsageError) before anything starts.

    A loop's run has a ``variant`` and its ``config``; a script's has ``script``
    (``variant`` then names it: :attr:`Script.label`) and no config, and
    ``window_s`` when its epochs are windows whatever it marks (``--window``).
    """

    variant: str
    config: RunConfig | None
    results_dir: Path = Path("results")
    memory_cap_bytes: int | None = None  # None: default_memory_cap() when the run starts
    timeout_s: float | None = None
    sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S
    trace: bool = False
    trace_frames: int = tracing.FRAMES
    measure: str = DEFAULT_MEASURE  # the series the verdict judges: rss, tree-pss, tree-uss or heap
    script: Script | None = None
    window_s: float | None = None  # a script's epochs are windows of this many seconds, marks or not
    gc_collect: str = gc_readings.DEFAULT_POLICY  # what the worker does to the collector before each reading
    lines: tuple[str, ...] | None = None  # --lines: None off; () train_epoch only; else train_epoch and these

    def __post_init__(self) -> None:
        if self.script is not None:
            self._check_script()
        elif not isinstance(self.variant, str) or not self.variant:
            raise UsageError("a variant is required: --variant NAME (or a script: --script PATH)")
        elif not isinstance(self.config, RunConfig):
            raise UsageError(f"config must be a RunConfig, got {type(self.config).__name__}")
        elif self.window_s is not None:
            raise UsageError("--window applies to a script (--script PATH or -m MODULE), not to a loop's epochs")
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
        if self.lines is not None:
            if isinstance(self.lines, str) or not all(isinstance(t, str) and t for t in self.lines):
                raise UsageError(f"--lines takes functions as module:name or path/file.py:name, got {self.lines!r}")
            object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "results_dir", Path(self.results_dir))

    def _check_script(self) -> None:
        if not isinstance(self.script, Script):
            raise UsageError(f"script must be a Script, got {type(self.script).__name__}")
        if self.config is not None:
            raise UsageError("a script takes its own arguments, not a loop's configuration")
        if self.lines is not None:
            raise UsageError("--lines profiles a loop's train_epoch and its helpers; a script has none: use --trace")
        window = self.window_s
        if window is not None and (
            isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 < window < math.inf
        ):
            raise UsageError(f"--window must be a positive number of seconds, got {window:g}")
        if window is not None and self.measure == "heap":
            raise UsageError("measure heap needs marked epochs: windows of samples hold no Python heap")
        object.__setattr__(self, "variant", self.script.label)

    @property
    def epochs_from(self) -> str:
        """Where the run's epochs come from: a loop, a script's marks, or windows (--window)."""
        if self.script is None:
            return LOOP
        return WINDOWS if self.window_s is not None else MARKS

    @property
    def window_or_default(self) -> float | None:
        """A script's window length: --window, or the default used when it marks no epochs; None for a loop."""
        if self.script is None:
            return None
        return self.window_s if self.window_s is not None else DEFAULT_WINDOW_S


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
