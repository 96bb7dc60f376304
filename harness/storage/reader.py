"""Reading run directories back: one run as metadata and pandas tables, or every run under some paths.

The loader reads a run whose run died mid-write (it drops a last line that was
cut off) and refuses, with a message saying why, a directory it cannot read.
It reads schema versions 1 to 3: an older run's tables get the columns its
version lacks (the process tree's, tracer_bytes), empty, and its meta.json is
returned as it is on disk.  A script run judged per window (schema version 3)
gets its windows of samples.csv as its epochs table (:mod:`~harness.storage.windows`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness import records
from harness.errors import UsageError
from harness.scripts import DEFAULT_WINDOW_S
from harness.storage import files, validate
from harness.storage.layout import EPOCHS, LINES, META, SAMPLES, TRACE
from harness.storage.windows import window_epochs


@dataclass(frozen=True)
class Run:
    """A run directory as read back: metadata and tables.

    ``meta`` is meta.json as read, except that for a run still ``running`` (or
    whose recorder was killed) ``epochs_done`` is the last epoch in epochs.csv.
    """

    path: Path
    meta: dict[str, Any]
    epochs: pd.DataFrame
    samples: pd.DataFrame
    trace: dict[str, Any] | None
    lines: dict[str, Any] | None = None  # lines.json, with --lines

    @property
    def peak_rss_bytes(self) -> int | None:
        """The highest RSS the run saw: the worker's own high-water mark, a timed sample or the stop record."""
        candidates = [
            int(frame[column].max())
            for frame, column in (
                (self.epochs, "peak_rss_bytes"),
                (self.epochs, "rss_bytes"),
                (self.samples, "rss_bytes"),
            )
            if column in frame.columns and frame[column].notna().any()
        ]
        stop = self.meta.get("stop") or {}
        if stop.get("rss_bytes"):
            candidates.append(int(stop["rss_bytes"]))
        return max(candidates) if candidates else None

    @property
    def schema_version(self) -> int:
        """The schema version the run was written in."""
        return int(self.meta["schema_version"])

    @property
    def metric_columns(self) -> list[str]:
        """The loop's metric columns of epochs.csv, in order."""
        fixed = records.COLUMNS_OF_VERSION[self.schema_version][0]
        return [name for name in self.epochs.columns if name not in fixed and name not in records.ADDED_EPOCH_COLUMNS]

    @property
    def max_children(self) -> int:
        """The most descendants the worker had at once (0 for a run of schema version 1: not recorded)."""
        values = [frame["children"].max() for frame in (self.epochs, self.samples) if frame["children"].notna().any()]
        return int(max(values)) if values else 0

    def peak_of(self, column: str) -> int | None:
        """The highest value of a memory column (``tree_pss_bytes``...) in epochs, samples and stop, or None."""
        values = [
            int(frame[column].max())
            for frame in (self.epochs, self.samples)
            if column in frame.columns and frame[column].notna().any()
        ]
        stop = self.meta.get("stop") or {}
        if isinstance(stop, dict) and isinstance(stop.get(column), int):
            values.append(int(stop[column]))
        return max(values) if values else None


def _empty_column(name: str, index: pd.Index) -> pd.Series:
    """A column of no values: nullable integers for the integer columns, NaN floats for the others."""
    if name in records.INTEGER_COLUMNS:
        return pd.Series(pd.NA, index=index, dtype="Int64")
    return pd.Series(float("nan"), index=index, dtype="float64")


def _read_table(path: Path, required: tuple[str, ...], added: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV of the run as typed columns; ``added`` are columns its schema version lacks, filled empty."""
    empty = pd.DataFrame({name: _empty_column(name, pd.RangeIndex(0)) for name in (*required, *added)})
    # Parsed from bytes: decoding a 100 MB table to text first took a third of the time.
    data = files.complete_lines(files.read_bytes(path, files.TABLE_LIMIT) or b"")
    if not data.strip():
        return empty
    try:
        frame = pd.read_csv(io.BytesIO(data), encoding_errors="replace")
    except (pd.errors.ParserError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise UsageError(f"cannot read {path}: it lacks the columns {', '.join(missing)}")
    # Built column by column into a dict and framed once: assigning columns one at a time into a
    # DataFrame costs time quadratic in their number (200,000 metrics took minutes).
    columns = {name: _column(path, name, frame[name]) for name in frame.columns}
    columns |= {name: _empty_column(name, frame.index) for name in added if name not in columns}
    return pd.DataFrame(columns, index=frame.index)


def _column(path: Path, name: str, values: pd.Series) -> pd.Series:
    """One CSV column as numbers: nullable integers for the integer columns, floats (NaN where not a number) else."""
    if name not in records.INTEGER_COLUMNS:
        return pd.to_numeric(values, errors="coerce").astype("float64")
    try:
        return values.astype("Int64")  # nullable: heap_bytes is empty when not traced
    except (TypeError, ValueError, OverflowError):
        raise UsageError(
            f"cannot read {path}: column {name} holds values that are not whole numbers (64-bit)"
        ) from None


def _read_meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / META
    if not run_dir.is_dir():
        raise UsageError(f"{str(run_dir)!r} is not a directory; expected a run directory such as results/<run-id>")
    meta = files.read_json(path, files.META_LIMIT)
    if meta is None:
        raise UsageError(f"{str(run_dir)!r} is not a leakbench run directory: it has no {META}")
    if not isinstance(meta, dict) or "schema_version" not in meta:
        raise UsageError(f"{path} is not leakbench run metadata: it has no schema_version")
    version = meta["schema_version"]
    if isinstance(version, bool) or version not in records.READABLE_VERSIONS:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > records.SCHEMA_VERSION
        fix = "upgrade leakbench (pip install -U leakbench) to read it" if newer else "re-run it with this leakbench"
        *earlier, last = (str(v) for v in records.READABLE_VERSIONS)
        readable = f"{', '.join(earlier)} and {last}" if earlier else last
        raise UsageError(f"{path} has schema_version {version!r}; this leakbench reads versions {readable}: {fix}")
    try:
        records.RunMeta.from_dict(meta)
        if meta.get("growth") is not None:
            validate.check_growth(meta["growth"])
        if meta.get("script") is not None:
            validate.check_script(meta["script"])  # explain and sweeps rebuild the script's command line from it
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path} is not valid run metadata: {exc}") from None
    return meta


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read a run directory (also one whose run died mid-write); UsageError saying why it cannot be read."""
    run_dir = Path(path)
    meta = _read_meta(run_dir)
    epoch_columns, sample_columns = records.COLUMNS_OF_VERSION[meta["schema_version"]]
    # An older run lacks the columns added since (the tree's, tracer_bytes): they are added, empty, so every
    # reader finds them.
    epochs = _read_table(run_dir / EPOCHS, epoch_columns, records.ADDED_EPOCH_COLUMNS)
    samples = _read_table(run_dir / SAMPLES, sample_columns, records.TREE_COLUMNS)
    if meta.get("epochs_from") == records.WINDOWS or (meta.get("epochs_from") == records.MARKS and epochs.empty):
        # A script that marks no epochs (so far) is judged per window of its samples: computed here, for every reader.
        epochs = window_epochs(samples, float(meta.get("window_s") or DEFAULT_WINDOW_S))
        meta["epochs_from"], meta["epochs_done"] = records.WINDOWS, len(epochs)
    if meta["status"] == records.RUNNING and not epochs.empty:
        # The recorder writes epochs_done only at the end: for a run still going, or one whose
        # recorder was killed, the epochs recorded so far are what epochs.csv holds.
        meta["epochs_done"] = int(epochs["epoch"].max())
    trace = _read_checked(run_dir / TRACE, files.TRACE_LIMIT, validate.check_trace)
    return Run(
        run_dir, meta, epochs, samples, trace, _read_checked(run_dir / LINES, files.LINES_LIMIT, validate.check_lines)
    )


def _read_checked(path: Path, limit: int, check: Callable[[Any], None]) -> Any:
    """trace.json or lines.json, checked; None when the run has none (not traced, not profiled)."""
    document = files.read_json(path, limit)
    if document is not None:
        try:
            check(document)
        except ValueError as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
    return document


def read_meta(run_dir: Path) -> dict[str, Any] | None:
    """A run's meta.json as a dict without checking it; None when it cannot be read (a sweep's quick look)."""
    try:
        meta = files.read_json(Path(run_dir) / META, files.META_LIMIT)
    except UsageError:
        return None
    return meta if isinstance(meta, dict) else None


def find_runs(results_dir: str | os.PathLike[str]) -> list[Path]:
    """Run directories (those holding a meta.json) directly under ``results_dir``, oldest id first."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    # Anything named meta.json counts (a damaged one too, so that it is reported, not silently skipped).
    return sorted(child for child in root.iterdir() if os.path.lexists(child / META))


def find_run_dirs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Run directories named directly, or found one level below a results directory, sorted by name."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if os.path.lexists(path / META):
            found.append(path)
        elif path.is_dir():
            below = find_runs(path)
            if not below:
                raise UsageError(f"{path}: no run directories in it (a run directory holds {META})")
            found.extend(below)
        else:
            raise UsageError(f"{path}: not a run directory or a results directory")
    # The same run named twice (directly and through its results directory) counts once.
    unique = {p.resolve(): p for p in found}
    return sorted(unique.values(), key=lambda p: p.name)


def load_runs(paths: Iterable[str | os.PathLike[str]], skipped: list[str] | None = None) -> list[Run]:
    """Load every run found under ``paths`` (see :func:`find_run_dirs`).

    A run named directly must load (UsageError otherwise).  One found inside a
    results directory that cannot be read (another schema version, a damaged
    meta.json) is left out and its reason appended to ``skipped`` when given, so
    one bad directory does not hide all the others.
    """
    given = [Path(p) for p in paths]
    named = {p.resolve() for p in given if os.path.lexists(p / META)}
    runs = []
    for run_dir in find_run_dirs(given):
        try:
            runs.append(load_run(run_dir))
        except UsageError as exc:
            if run_dir.resolve() in named or skipped is None:
                raise
            skipped.append(str(exc))
    return runs
