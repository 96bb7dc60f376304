"""Run directories on disk (SCHEMA.md, version 1): create, append to, and load them.

A run directory is never overwritten: its name ends in a random suffix and it
is made with an exclusive ``os.mkdir``.  Rows are appended and flushed as they
arrive, so a run that died keeps everything recorded up to then; the loader
drops a last line that was cut off mid-write.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from harness import records
from harness.errors import UsageError
from harness.jsonfile import write_json_atomic

META = "meta.json"
EPOCHS = "epochs.csv"
SAMPLES = "samples.csv"
TRACE = "trace.json"
WORKER_LOG = "worker.log"

FSYNC_INTERVAL_S = 0.5  # at most this much of epochs.csv is lost if the machine itself crashes
_INTEGER_COLUMNS = ("epoch", "rss_bytes", "peak_rss_bytes", "heap_bytes", "py_blocks")


def utc_now() -> datetime:
    """The current time in UTC (one place, so the format is the same everywhere)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC to the millisecond: 2025-01-31T12:00:00.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe lower-case slug: "tests/fixtures/loops.py:GrowLoop" -> "growloop"."""
    tail = text.rpartition(":")[2] or text
    cleaned = re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")
    return cleaned[:limit] or "variant"


def new_run_id(variant: str, leak: str | None, seed: int, moment: datetime | None = None) -> str:
    """"<UTC yyyymmddTHHMMSS>-<variant>-<leak or noleak>-s<seed>-<6 hex>", unique with high probability."""
    stamp = (moment or utc_now()).astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{slug(variant)}-{slug(leak) if leak else 'noleak'}-s{seed}-{secrets.token_hex(3)}"


def check_results_dir(results_dir: Path) -> None:
    """UsageError unless ``results_dir`` is, or can be made, a writable directory; writes nothing."""
    path = Path(results_dir).expanduser().absolute()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"results directory {str(results_dir)!r} cannot be used: {str(probe)!r} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"results directory {str(results_dir)!r} is not writable; pass --results DIR with a writable DIR")


def create_run_dir(results_dir: Path, variant: str, leak: str | None, seed: int) -> Path:
    """Make ``results_dir/<new run id>`` exclusively (another id on the rare clash); returns its path."""
    check_results_dir(results_dir)
    results_dir = Path(results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create results directory {str(results_dir)!r}: {exc.strerror}") from None
    for _ in range(20):
        path = results_dir / new_run_id(variant, leak, seed)
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot create a run directory in {str(results_dir)!r}: {exc.strerror}") from None
        return path
    raise RuntimeError(f"could not find a free run id in {results_dir} after 20 tries")


def write_meta(run_dir: Path, meta: Mapping[str, Any]) -> None:
    """Replace meta.json atomically (temporary file, fsync, rename): readers see the old or the new one."""
    write_json_atomic(Path(run_dir) / META, dict(meta))


def store_growth(run_dir: Path, meta: Mapping[str, Any], growth: Mapping[str, Any]) -> None:
    """Keep a growth analysis in meta.json; a read-only archive of runs gets a note on stderr instead."""
    try:
        write_meta(run_dir, {**meta, "growth": dict(growth)})
    except OSError as exc:
        print(f"note: growth not stored in {Path(run_dir) / META}: {exc.strerror or exc}", file=sys.stderr)


class CsvAppender:
    """An append-only CSV file whose header is written with the first row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: tuple[str, ...] | None = None
        self._file = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 -- open for the whole run; close()
        self._writer = csv.writer(self._file, lineterminator="\n")

    def write(self, header: tuple[str, ...], rows: list[list[Any]]) -> None:
        """Append rows (writing ``header`` first if the file is new) and flush them to the OS."""
        if self.header is None:
            self.header = header
            self._writer.writerow(header)
        self._writer.writerows(["" if value is None else value for value in row] for row in rows)
        self._file.flush()

    def sync(self) -> None:
        """fsync: what was written survives a crash of the machine, not only of the process."""
        if not self._file.closed:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush, fsync and close."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class RunWriter:
    """Appends a run's epochs and samples as they arrive, flushed to the OS at once.

    Flushing makes every row survive the death of the worker or of this process.
    fsync, which makes it survive a crash of the machine, costs about 3 ms on
    this machine's ext4: :meth:`sync_epochs` does it at most every
    :data:`FSYNC_INTERVAL_S`, and :meth:`close` always.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.metric_names: tuple[str, ...] | None = None
        self._synced_at = 0.0
        self._epochs = CsvAppender(self.run_dir / EPOCHS)
        # Samples are many and cheap to lose at a machine crash: flushed at once, fsync'ed at close.
        self._samples = CsvAppender(self.run_dir / SAMPLES)

    def epoch(self, record: records.EpochRecord) -> None:
        """Append one epoch row; the metric columns are fixed by the first record."""
        if self.metric_names is None:
            self.metric_names = tuple(record.metrics)
        self._epochs.write(records.EPOCH_COLUMNS + self.metric_names, [record.row(self.metric_names)])

    def sync_epochs(self) -> None:
        """fsync epochs.csv unless that was done less than FSYNC_INTERVAL_S ago (called after each batch read)."""
        now = time.monotonic()
        if now - self._synced_at >= FSYNC_INTERVAL_S:
            self._epochs.sync()
            self._synced_at = now

    def samples(self, samples: list[records.Sample]) -> None:
        """Append timed samples."""
        if samples:
            self._samples.write(records.SAMPLE_COLUMNS, [sample.row() for sample in samples])

    def close(self) -> None:
        """Close both files (fsync'ing them)."""
        self._epochs.close()
        self._samples.close()


@dataclass(frozen=True)
class Run:
    """A run directory as read back: metadata and tables."""

    path: Path
    meta: dict[str, Any]
    epochs: pd.DataFrame
    samples: pd.DataFrame
    trace: dict[str, Any] | None

    @property
    def peak_rss_bytes(self) -> int | None:
        """The highest RSS the run saw: the worker's own high-water mark, a timed sample or the stop record."""
        candidates = [
            int(frame[column].max())
            for frame, column in ((self.epochs, "peak_rss_bytes"), (self.epochs, "rss_bytes"), (self.samples, "rss_bytes"))
            if column in frame.columns and frame[column].notna().any()
        ]
        stop = self.meta.get("stop") or {}
        if stop.get("rss_bytes"):
            candidates.append(int(stop["rss_bytes"]))
        return max(candidates) if candidates else None

    @property
    def metric_columns(self) -> list[str]:
        """The loop's metric columns of epochs.csv, in order."""
        return [name for name in self.epochs.columns if name not in records.EPOCH_COLUMNS]


def _read_complete_lines(path: Path) -> str:
    """The file's text without a last line that was cut off mid-write."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return text


def _read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    empty = pd.DataFrame({name: pd.Series(dtype="Int64" if name in _INTEGER_COLUMNS else "float64") for name in required})
    if not path.exists():
        return empty
    text = _read_complete_lines(path)
    if not text.strip():
        return empty
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise UsageError(f"cannot read {path}: it lacks the columns {', '.join(missing)}")
    for name in frame.columns:
        if name in _INTEGER_COLUMNS:
            try:
                frame[name] = frame[name].astype("Int64")  # nullable: heap_bytes is empty when not traced
            except (TypeError, ValueError):
                raise UsageError(f"cannot read {path}: column {name} holds values that are not whole numbers") from None
        else:
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def _read_meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / META
    if not run_dir.is_dir():
        raise UsageError(f"{str(run_dir)!r} is not a directory; expected a run directory such as results/<run-id>")
    if not path.exists():
        raise UsageError(f"{str(run_dir)!r} is not a leakbench run directory: it has no {META}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(meta, dict) or "schema_version" not in meta:
        raise UsageError(f"{path} is not leakbench run metadata: it has no schema_version")
    version = meta["schema_version"]
    if version != records.SCHEMA_VERSION:
        newer = isinstance(version, int) and version > records.SCHEMA_VERSION
        fix = "upgrade leakbench (pip install -U leakbench) to read it" if newer else "re-run it with this leakbench"
        raise UsageError(
            f"{path} has schema_version {version!r}; this leakbench reads version {records.SCHEMA_VERSION}: {fix}"
        )
    try:
        records.RunMeta.from_dict(meta)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path} is not valid run metadata: {exc}") from None
    return meta


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read a run directory (also one whose run died mid-write); UsageError saying why it cannot be read."""
    run_dir = Path(path)
    meta = _read_meta(run_dir)
    epochs = _read_table(run_dir / EPOCHS, records.EPOCH_COLUMNS)
    samples = _read_table(run_dir / SAMPLES, records.SAMPLE_COLUMNS)
    trace = None
    trace_path = run_dir / TRACE
    if trace_path.exists():
        try:
            trace = json.loads(trace_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read {trace_path}: {exc}") from None
    return Run(run_dir, meta, epochs, samples, trace)


def read_meta(run_dir: Path) -> dict[str, Any] | None:
    """A run's meta.json as a dict without checking it; None when it cannot be read (a sweep's quick look)."""
    try:
        meta = json.loads((Path(run_dir) / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def find_runs(results_dir: str | os.PathLike[str]) -> list[Path]:
    """Run directories (those holding a meta.json) directly under ``results_dir``, oldest id first."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    return sorted(child for child in root.iterdir() if (child / META).is_file())


def find_run_dirs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Run directories named directly, or found one level below a results directory, sorted by name."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / META).is_file():
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
    named = {p.resolve() for p in given if (p / META).is_file()}
    runs = []
    for run_dir in find_run_dirs(given):
        try:
            runs.append(load_run(run_dir))
        except UsageError as exc:
            if run_dir.resolve() in named or skipped is None:
                raise
            skipped.append(str(exc))
    return runs
