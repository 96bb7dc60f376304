"""The records a run stores: run metadata, one row per epoch, one timed memory sample.

Each is a frozen dataclass that checks its own fields, so a bad value is caught
where it is built (in the parent for the worker's epoch records) and never reaches the disk.
The on-disk layout they serialise to is described in docs/SCHEMA.md (version 3).

Schema history (bump SCHEMA_VERSION and add a line on every incompatible change; details in docs/SCHEMA.md):
  1: first version.
  2: the process tree: TREE_COLUMNS in both CSVs, meta.json measure and process_tree, the cap on the tree's PSS.
  3: script runs (meta.json script, epochs_from, window_s; epochs may be windows of samples.csv), traced runs
     judged fairly (epochs.csv tracer_bytes, meta.json gc).  Older versions load, missing columns read empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # load_run reads these; columns a version lacks are read empty

# Run statuses and the exit codes of ``python -m harness run`` for each.
RUNNING, COMPLETED, MEMORY_CAP = "running", "completed", "memory_cap"
TIMEOUT, INTERRUPTED, FAILED = "timeout", "interrupted", "failed"
STATUSES = (RUNNING, COMPLETED, MEMORY_CAP, TIMEOUT, INTERRUPTED, FAILED)
# 130 for interrupted: the shell's convention for "ended by SIGINT".
EXIT_CODES: dict[str, int] = {COMPLETED: 0, MEMORY_CAP: 3, TIMEOUT: 4, FAILED: 5, INTERRUPTED: 130}
USAGE_EXIT_CODE = 2
# A leak run may end at the memory cap: that is its expected ending, not a failure.
FINISHED = (COMPLETED, MEMORY_CAP)
# What reports, specs and budgets call the fixed default of a variant (no --leak).
NO_LEAK = "none"

# Fixed leading columns of epochs.csv; the loop's metrics follow in first-epoch order.
V1_EPOCH_COLUMNS = ("epoch", "rss_bytes", "peak_rss_bytes", "heap_bytes", "py_blocks", "epoch_s", "elapsed_s")
V1_SAMPLE_COLUMNS = ("t_s", "rss_bytes", "epoch")
# Version 2: the worker's live descendants, their RSS, the tree's USS and PSS (harness.recording.tree).
TREE_COLUMNS = ("children", "children_rss_bytes", "tree_uss_bytes", "tree_pss_bytes")
TRACER_COLUMNS = ("tracer_bytes",)  # version 3: tracemalloc's own memory at the reading (in RSS, not the loop's)
V2_EPOCH_COLUMNS, SAMPLE_COLUMNS = V1_EPOCH_COLUMNS + TREE_COLUMNS, V1_SAMPLE_COLUMNS + TREE_COLUMNS
EPOCH_COLUMNS = V2_EPOCH_COLUMNS + TRACER_COLUMNS
ADDED_EPOCH_COLUMNS = TREE_COLUMNS + TRACER_COLUMNS  # read empty from runs of a version without them
INTEGER_COLUMNS = ("epoch", "rss_bytes", "peak_rss_bytes", "heap_bytes", "py_blocks", *TREE_COLUMNS, *TRACER_COLUMNS)

# What a growth verdict or a budget can judge (--measure, measure = ...): the epochs.csv column of each.
MEASURE_COLUMNS = {
    "rss": "rss_bytes",  # the worker's own resident memory
    "tree-pss": "tree_pss_bytes",  # the worker and its descendants, shared pages shared out
    "tree-uss": "tree_uss_bytes",  # the worker and its descendants, pages of one process only
    "heap": "heap_bytes",  # the Python heap traced by tracemalloc (--trace)
}
DEFAULT_MEASURE = "rss"
# The fixed columns of epochs.csv and the columns of samples.csv in each readable schema version.
COLUMNS_OF_VERSION = {1: (V1_EPOCH_COLUMNS, V1_SAMPLE_COLUMNS), 2: (V2_EPOCH_COLUMNS, SAMPLE_COLUMNS)}
COLUMNS_OF_VERSION[3] = (EPOCH_COLUMNS, SAMPLE_COLUMNS)
_WIRE = V1_EPOCH_COLUMNS + TRACER_COLUMNS  # what the worker sends of an epoch record (the tree is the parent's)
LOOP, MARKS, WINDOWS = "loop", "marks", "windows"  # epochs_from: a loop's epochs, a script's marks, windows
# Metrics a loop may return per epoch: each is a column, and 16,000 columns take seconds to load.
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
class TreeFigures:
    """The process tree at one sample, taken by the parent: descendants, their RSS, the tree's USS and PSS."""

    children: int | None = None
    children_rss_bytes: int | None = None
    tree_uss_bytes: int | None = None  # None where this sample did not read smaps_rollup (its cost is budgeted)
    tree_pss_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in TREE_COLUMNS:
            _check_count(name, getattr(self, name), optional=True)

    def values(self) -> list[int | None]:
        """The tree columns' values, in :data:`TREE_COLUMNS` order."""
        return [getattr(self, name) for name in TREE_COLUMNS]


NO_TREE = TreeFigures()


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch: the worker's own figures at its end, and the tree's latest, added by the parent."""

    epoch: int
    rss_bytes: int
    peak_rss_bytes: int
    heap_bytes: int | None
    py_blocks: int | None
    epoch_s: float
    elapsed_s: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    tree: TreeFigures = NO_TREE
    tracer_bytes: int | None = None  # tracemalloc's own memory when traced (version 3)

    def __post_init__(self) -> None:
        _check_count("epoch", self.epoch, minimum=1)
        for name in ("rss_bytes", "peak_rss_bytes", "heap_bytes", "py_blocks", "tracer_bytes"):
            _check_count(name, getattr(self, name), optional=name not in ("rss_bytes", "peak_rss_bytes"))
        for name in ("epoch_s", "elapsed_s"):
            _check_seconds(name, getattr(self, name))
        object.__setattr__(self, "metrics", check_metrics(self.metrics))
        if not isinstance(self.tree, TreeFigures):
            raise ValueError(f"tree must be TreeFigures, got {self.tree!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the worker's figures (the wire format); :meth:`from_dict` reverses it."""
        return {name: getattr(self, name) for name in _WIRE} | {"metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], tree: TreeFigures = NO_TREE) -> EpochRecord:
        """Build from :meth:`to_dict` output, with the parent's ``tree``; ValueError on missing or unknown keys."""
        names = {*_WIRE, "metrics"}
        missing, unknown = names - set(data) - set(TRACER_COLUMNS), set(data) - names
        if missing or unknown:
            raise ValueError(f"bad epoch record: missing {sorted(missing)}, unknown {sorted(unknown)}")
        return cls(**dict(data), tree=tree)

    def row(self, metric_names: tuple[str, ...]) -> list[Any]:
        """The epochs.csv row: fixed columns, then ``metric_names`` (None where absent)."""
        fixed = [getattr(self, name) for name in V1_EPOCH_COLUMNS] + self.tree.values() + [self.tracer_bytes]
        return fixed + [self.metrics.get(name) for name in metric_names]


@dataclass(frozen=True)
class Sample:
    """One timed sample, taken by the parent: the worker's own RSS and the tree's figures."""

    t_s: float
    rss_bytes: int
    epoch: int
    tree: TreeFigures = NO_TREE

    def __post_init__(self) -> None:
        if not _is_number(self.t_s) or not math.isfinite(self.t_s):
            raise ValueError(f"t_s must be a finite number, got {self.t_s!r}")
        _check_count("rss_bytes", self.rss_bytes)
        _check_count("epoch", self.epoch)  # 0 = before the first epoch started

    def row(self) -> list[Any]:
        """The samples.csv row."""
        return [round(self.t_s, 6), self.rss_bytes, self.epoch, *self.tree.values()]


@dataclass(frozen=True)
class StopInfo:
    """Why and where a run ended early (meta["stop"])."""

    reason: str
    epoch: int
    rss_bytes: int | None  # the worker's own RSS at the stop (memory_cap: at the reading that passed the cap)
    exit_code: int | None
    stderr_tail: tuple[str, ...] = ()
    message: str = ""
    tree_pss_bytes: int | None = None  # the tree's PSS then: at memory_cap, the highest value over the cap
    children: int | None = None

    def __post_init__(self) -> None:
        if self.reason not in STATUSES[2:]:  # memory_cap, timeout, interrupted, failed
            raise ValueError(f"stop reason must be one of {', '.join(STATUSES[2:])}, got {self.reason!r}")
        _check_count("epoch", self.epoch)
        for name in ("rss_bytes", "tree_pss_bytes", "children"):
            _check_count(name, getattr(self, name), optional=True)
        if self.exit_code is not None and not _is_int(self.exit_code):
            raise ValueError(f"exit_code must be an integer or None, got {self.exit_code!r}")
        object.__setattr__(self, "stderr_tail", tuple(str(line) for line in self.stderr_tail))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for meta.json."""
        return asdict(self) | {"stderr_tail": list(self.stderr_tail)}


# The keys of meta.json, in the order written (see docs/SCHEMA.md); one string, read as a paragraph.
META_KEYS = tuple(
    """schema_version run_id variant leak seed epochs_planned epochs_done status config memory_cap_bytes
    memory_limit_bytes timeout_s trace sample_interval_s measure gc script epochs_from window_s started_at ended_at
    host versions git_commit process_tree stop growth""".split()  # noqa: SIM905
)
# Keys a reader does without: added after version 1 (memory_limit_bytes...), or filled at the end.
OPTIONAL_META_KEYS = tuple("growth stop memory_limit_bytes measure process_tree gc script epochs_from window_s".split())  # noqa: SIM905


@dataclass(frozen=True)
class RunMeta:
    """The contents of meta.json (see SCHEMA.md); checks the fields every reader relies on."""

    run_id: str
    variant: str  # for a script run: its path as given, or "-m module"
    leak: str | None
    seed: int | None  # None for a script run (its arguments are its own)
    epochs_planned: int | None  # None for a script run: it ends when it ends
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
    measure: str | None = DEFAULT_MEASURE  # what the run's verdict judges (None in version 1: "rss")
    process_tree: Mapping[str, Any] | None = None  # how the tree was measured (version 2)
    script: Mapping[str, Any] | None = None  # version 3: {path, module, args} of a script run; None for a loop
    epochs_from: str | None = LOOP  # version 3: loop, marks or windows (None before: a loop)
    window_s: float | None = None  # version 3: a script run's window length in seconds
    gc: Mapping[str, Any] | None = None  # the collector before each reading: policy, collections, seconds (version 3)

    def __post_init__(self) -> None:
        if self.schema_version not in READABLE_VERSIONS:
            raise ValueError(f"schema_version must be one of {READABLE_VERSIONS}, got {self.schema_version!r}")
        if self.measure is not None and self.measure not in MEASURE_COLUMNS:
            raise ValueError(f"measure must be one of {', '.join(MEASURE_COLUMNS)}, got {self.measure!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if not isinstance(self.run_id, str) or not self.run_id:
            raise ValueError(f"run_id must be a non-empty string, got {self.run_id!r}")
        is_script = self.script is not None
        _check_count("seed", self.seed, optional=is_script)
        _check_count("epochs_planned", self.epochs_planned, minimum=1, optional=is_script)
        if self.epochs_from not in ((MARKS, WINDOWS) if is_script else (LOOP, None)):
            raise ValueError(f"epochs_from {self.epochs_from!r} does not fit {'a script' if is_script else 'a loop'}")
        _check_seconds("window_s", 0.0 if self.window_s is None else self.window_s)
        _check_count("epochs_done", self.epochs_done)
        _check_count("memory_cap_bytes", self.memory_cap_bytes, minimum=1)
        _check_count("memory_limit_bytes", self.memory_limit_bytes, optional=True)
        if self.timeout_s is not None and (not _is_number(self.timeout_s) or not self.timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number or None, got {self.timeout_s!r}")
        if (self.status == RUNNING) != (self.ended_at is None):
            raise ValueError("ended_at must be null exactly while the run is running")
        for name in ("config", "host", "versions", "stop", "growth", "process_tree", "gc", "script"):
            value = getattr(self, name)
            if not isinstance(value, Mapping) and not (value is None and name in OPTIONAL_META_KEYS):
                raise ValueError(f"{name} must be an object, got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the key order of SCHEMA.md."""
        data = asdict(self)
        return {key: data[key] for key in META_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunMeta:
        """Check a meta.json dict; ValueError naming missing keys (unknown keys are kept out)."""
        missing = [key for key in META_KEYS if key not in data and key not in OPTIONAL_META_KEYS]
        if missing:
            raise ValueError(f"meta.json lacks {', '.join(missing)}")
        return cls(**{key: data.get(key) for key in META_KEYS})
