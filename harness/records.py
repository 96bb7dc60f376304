"""The records a run stores: run metadata, one row per epoch, one timed memory sample.

Each is a frozen dataclass that checks its own fields, so a bad value is caught
where it is made (in the worker for epoch records) and never reaches the disk.
The on-disk layout they serialise to is described in SCHEMA.md (version 1).

Schema history (bump SCHEMA_VERSION and add a line on every incompatible change):
  1: first version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# Run statuses and the exit codes of ``python -m harness run`` for each.
RUNNING = "running"
COMPLETED = "completed"
MEMORY_CAP = "memory_cap"
TIMEOUT = "timeout"
INTERRUPTED = "interrupted"
FAILED = "failed"
STATUSES = (RUNNING, COMPLETED, MEMORY_CAP, TIMEOUT, INTERRUPTED, FAILED)
EXIT_CODES: dict[str, int] = {
    COMPLETED: 0,
    MEMORY_CAP: 3,
    TIMEOUT: 4,
    FAILED: 5,
    INTERRUPTED: 130,  # the shell's convention for "ended by SIGINT"
}
USAGE_EXIT_CODE = 2
# A leak run may end at the memory cap: that is its expected ending, not a failure.
FINISHED = (COMPLETED, MEMORY_CAP)
# What reports, specs and budgets call the fixed default of a variant (no --leak).
NO_LEAK = "none"

# Fixed leading columns of epochs.csv; the loop's metrics follow in first-epoch order.
EPOCH_COLUMNS = ("epoch", "rss_bytes", "peak_rss_bytes", "heap_bytes", "py_blocks", "epoch_s", "elapsed_s")
SAMPLE_COLUMNS = ("t_s", "rss_bytes", "epoch")
# Metrics a loop may return per epoch: each is a column of epochs.csv, and a table of thousands of
# columns is no longer a table anyone reads (loading 16,000 columns takes seconds).
MAX_METRICS = 1000


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_count(name: str, value: Any, minimum: int = 0, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_seconds(name: str, value: Any) -> None:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")


def check_metrics(metrics: Any) -> dict[str, float]:
    """The loop's metrics as ``{name: float}``; TypeError or ValueError naming the bad entry."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise TypeError(f"train_epoch must return a mapping of metric names to numbers, got {type(metrics).__name__}")
    if len(metrics) > MAX_METRICS:
        raise ValueError(f"train_epoch returned {len(metrics):,} metrics; at most {MAX_METRICS:,} are recorded")
    checked: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric names must be non-empty strings, got {name!r}")
        if name in EPOCH_COLUMNS:
            raise ValueError(f"metric name {name!r} clashes with a column the harness records")
        try:
            checked[name] = float(value)  # also accepts NumPy scalars and 0-d arrays
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r} must be a number, got {value!r}") from None
        if isinstance(value, bool):
            raise TypeError(f"metric {name!r} must be a number, got {value!r}")
    return checked


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch as measured by the worker."""

    epoch: int
    rss_bytes: int
    peak_rss_bytes: int
    heap_bytes: int | None
    py_blocks: int | None
    epoch_s: float
    elapsed_s: float
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_count("epoch", self.epoch, minimum=1)
        _check_count("rss_bytes", self.rss_bytes)
        _check_count("peak_rss_bytes", self.peak_rss_bytes)
        _check_count("heap_bytes", self.heap_bytes, optional=True)
        _check_count("py_blocks", self.py_blocks, optional=True)
        _check_seconds("epoch_s", self.epoch_s)
        _check_seconds("elapsed_s", self.elapsed_s)
        object.__setattr__(self, "metrics", check_metrics(self.metrics))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the worker's wire format); :meth:`from_dict` reverses it."""
        # By hand: dataclasses.asdict deep-copies, and this runs once per epoch in the worker.
        return {
            "epoch": self.epoch,
            "rss_bytes": self.rss_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "heap_bytes": self.heap_bytes,
            "py_blocks": self.py_blocks,
            "epoch_s": self.epoch_s,
            "elapsed_s": self.elapsed_s,
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpochRecord:
        """Build from :meth:`to_dict` output; ValueError on missing or unknown keys."""
        names = set(EPOCH_COLUMNS) | {"metrics"}
        missing, unknown = names - set(data), set(data) - names
        if missing or unknown:
            raise ValueError(f"bad epoch record: missing {sorted(missing)}, unknown {sorted(unknown)}")
        return cls(**dict(data))

    def row(self, metric_names: tuple[str, ...]) -> list[Any]:
        """The epochs.csv row: fixed columns, then ``metric_names`` (None where absent)."""
        fixed = [
            self.epoch,
            self.rss_bytes,
            self.peak_rss_bytes,
            self.heap_bytes,
            self.py_blocks,
            self.epoch_s,
            self.elapsed_s,
        ]
        return fixed + [self.metrics.get(name) for name in metric_names]


@dataclass(frozen=True)
class Sample:
    """One timed RSS sample of the worker, taken by the parent."""

    t_s: float
    rss_bytes: int
    epoch: int

    def __post_init__(self) -> None:
        if not _is_number(self.t_s) or not math.isfinite(self.t_s):
            raise ValueError(f"t_s must be a finite number, got {self.t_s!r}")
        _check_count("rss_bytes", self.rss_bytes)
        _check_count("epoch", self.epoch)  # 0 = before the first epoch started

    def row(self) -> list[Any]:
        """The samples.csv row."""
        return [round(self.t_s, 6), self.rss_bytes, self.epoch]


@dataclass(frozen=True)
class StopInfo:
    """Why and where a run ended early (meta["stop"])."""

    reason: str
    epoch: int
    rss_bytes: int | None
    exit_code: int | None
    stderr_tail: tuple[str, ...] = ()
    message: str = ""

    def __post_init__(self) -> None:
        if self.reason not in (MEMORY_CAP, TIMEOUT, INTERRUPTED, FAILED):
            raise ValueError(
                f"stop reason must be one of memory_cap, timeout, interrupted, failed, got {self.reason!r}"
            )
        _check_count("epoch", self.epoch)
        _check_count("rss_bytes", self.rss_bytes, optional=True)
        if self.exit_code is not None and not _is_int(self.exit_code):
            raise ValueError(f"exit_code must be an integer or None, got {self.exit_code!r}")
        object.__setattr__(self, "stderr_tail", tuple(str(line) for line in self.stderr_tail))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for meta.json."""
        return asdict(self) | {"stderr_tail": list(self.stderr_tail)}


META_KEYS = (
    "schema_version",
    "run_id",
    "variant",
    "leak",
    "seed",
    "epochs_planned",
    "epochs_done",
    "status",
    "config",
    "memory_cap_bytes",
    "memory_limit_bytes",
    "timeout_s",
    "trace",
    "sample_interval_s",
    "started_at",
    "ended_at",
    "host",
    "versions",
    "git_commit",
    "stop",
    "growth",
)


@dataclass(frozen=True)
class RunMeta:
    """The contents of meta.json (see SCHEMA.md); checks the fields every reader relies on."""

    run_id: str
    variant: str
    leak: str | None
    seed: int
    epochs_planned: int
    epochs_done: int
    status: str
    config: Mapping[str, Any]
    memory_cap_bytes: int
    memory_limit_bytes: int | None
    timeout_s: float | None
    trace: bool
    sample_interval_s: float
    started_at: str
    ended_at: str | None
    host: Mapping[str, Any]
    versions: Mapping[str, Any]
    git_commit: str | None
    stop: Mapping[str, Any] | None = None
    growth: Mapping[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"schema_version must be {SCHEMA_VERSION}, got {self.schema_version!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if not isinstance(self.run_id, str) or not self.run_id:
            raise ValueError(f"run_id must be a non-empty string, got {self.run_id!r}")
        _check_count("seed", self.seed)
        _check_count("epochs_planned", self.epochs_planned, minimum=1)
        _check_count("epochs_done", self.epochs_done)
        _check_count("memory_cap_bytes", self.memory_cap_bytes, minimum=1)
        _check_count("memory_limit_bytes", self.memory_limit_bytes, optional=True)
        if self.timeout_s is not None and (not _is_number(self.timeout_s) or not self.timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number or None, got {self.timeout_s!r}")
        if (self.status == RUNNING) != (self.ended_at is None):
            raise ValueError("ended_at must be null exactly while the run is running")
        for name in ("config", "host", "versions", "stop", "growth"):
            value = getattr(self, name)
            if not isinstance(value, Mapping) and not (value is None and name in ("stop", "growth")):
                raise ValueError(f"{name} must be an object, got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the key order of SCHEMA.md."""
        data = asdict(self)
        return {key: data[key] for key in META_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunMeta:
        """Check a meta.json dict; ValueError naming missing keys (unknown keys are kept out)."""
        missing = [key for key in META_KEYS if key not in data and key not in ("growth", "stop", "memory_limit_bytes")]
        if missing:
            raise ValueError(f"meta.json lacks {', '.join(missing)}")
        fields: dict[str, Any] = {key: data.get(key) for key in META_KEYS}
        return cls(**fields)
