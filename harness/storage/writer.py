"""Writing a run directory as the run goes: rows appended and flushed as they arrive, meta.json replaced whole.

Rows are flushed to the OS at once, so a run that died keeps everything
recorded up to then; meta.json is replaced atomically, so a reader sees the
old one or the new one, and under a lock, so an analysis stored by another
command never replaces a newer one.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from harness import records
from harness.errors import UsageError
from harness.jsonfile import rewrite_json_in_place, write_json_atomic
from harness.storage.files import META_LIMIT, read_json
from harness.storage.layout import EPOCHS, META, SAMPLES

FSYNC_INTERVAL_S = 0.5  # at most this much of epochs.csv is lost if the machine itself crashes


@contextmanager
def _meta_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run directory while meta.json is read and replaced (flock on the directory).

    The recording process and ``explain``/``check`` storing an analysis take it,
    so a store can compare the meta.json on disk with the one it analysed and
    never replace a newer one.  Where locking is not possible (a read-only or
    foreign filesystem) the write goes ahead unlocked, as it did before.
    """
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_meta(run_dir: Path, meta: Mapping[str, Any]) -> None:
    """Replace meta.json atomically (temporary file, fsync, rename): readers see the old or the new one.

    On a full disk, where the temporary copy does not fit, meta.json is
    rewritten in its own blocks when the new text fits them (a run's final
    status does: it is a few hundred bytes longer than the first meta.json,
    within the same 4 KiB block), so the run does not stay ``running`` for ever.
    """
    path = Path(run_dir) / META
    with _meta_lock(Path(run_dir)):
        try:
            write_json_atomic(path, dict(meta))
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not path.is_file():
                raise
            rewrite_json_in_place(path, dict(meta))


def store_growth(run_dir: Path, meta: Mapping[str, Any], growth: Mapping[str, Any]) -> bool:
    """Keep a growth analysis of a finished run in meta.json; True when stored.

    Only the process that records a run writes its meta.json while it runs: a
    run still ``running`` is left alone, and so is a meta.json that changed since
    ``meta`` was read (compare and swap under the directory lock).  A read-only
    archive of runs gets a note on stderr instead.
    """
    if meta.get("status") == records.RUNNING:
        return False
    path = Path(run_dir) / META
    try:
        with _meta_lock(Path(run_dir)):
            on_disk = read_json(path, META_LIMIT)
            if not isinstance(on_disk, dict) or {k: v for k, v in on_disk.items() if k != "growth"} != {
                k: v for k, v in meta.items() if k != "growth"
            }:
                return False  # another process wrote a newer meta.json: its analysis, if any, stands
            write_json_atomic(path, {**meta, "growth": dict(growth)})
    except (OSError, UsageError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"note: growth not stored in {path}: {reason}", file=sys.stderr)
        return False
    return True


def cannot_record(run_dir: Path, exc: OSError) -> str:
    """One line: why a run's files cannot be written ("No space left on device", a vanished directory)."""
    return f"cannot record the run in {run_dir}: {exc.strerror or exc}"


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
        self._writer.writerows(rows)  # None is written as an empty cell
        self._file.flush()

    def sync(self) -> None:
        """fsync: what was written survives a crash of the machine, not only of the process."""
        if not self._file.closed:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush, fsync and close (closed even when the flush fails: a full disk must not leak the file)."""
        if self._file.closed:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()


class RunWriter:
    """Appends a run's epochs and samples as they arrive, flushed to the OS at once (epochs by the batch read).

    Flushing makes every row survive the death of the worker or of this process.
    fsync, which makes it survive a crash of the machine, costs about 3 ms on
    this machine's ext4: :meth:`sync_epochs` does it at most every
    :data:`FSYNC_INTERVAL_S`, and :meth:`close` always.

    A write that fails (a full disk, a vanished directory) does not raise: the
    writer keeps the error in :attr:`failure`, writes nothing more, and the
    recorder ends the run saying why (what was written before is kept).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.metric_names: tuple[str, ...] | None = None
        self.failure: OSError | None = None
        self._synced_at = 0.0
        self._rows: list[list[Any]] = []  # epoch rows added, not yet written
        self._tree, self._tree_values = records.NO_TREE, records.NO_TREE.values()
        self._epochs = CsvAppender(self.run_dir / EPOCHS)
        # Samples are many and cheap to lose at a machine crash: flushed at once, fsync'ed at close.
        self._samples = CsvAppender(self.run_dir / SAMPLES)

    def _guard(self, write: Callable[[], None]) -> None:
        """Run ``write`` unless a write already failed; keep its OSError instead of raising it."""
        if self.failure is not None:
            return
        try:
            write()
        except OSError as exc:
            self.failure = exc

    def epoch(self, record: records.EpochRecord) -> None:
        """Add one epoch row, written by the next :meth:`sync_epochs`; the first record fixes the metric columns."""
        if self.metric_names is None:
            self.metric_names = tuple(record.metrics)
        self._rows.append(record.row(self.metric_names))

    def epoch_values(
        self,
        epoch: int,
        rss: int,
        peak: int,
        py_blocks: int | None,
        epoch_s: float,
        elapsed_s: float,
        tree: records.TreeFigures,
        metrics: Sequence[float],
    ) -> None:
        """Add the row of an epoch frame's numbers, metrics in the columns' order; ValueError out of range.

        The row :meth:`epoch` adds for the same record, built without one: the
        recorder spent most of its time per epoch checking the types of numbers
        that the frame's format had already fixed.  Only their range is checked.
        """
        if epoch < 1 or rss < 0 or peak < 0 or (py_blocks is not None and py_blocks < 0):
            raise ValueError(f"bad epoch frame: epoch {epoch}, rss {rss}, peak {peak}, py_blocks {py_blocks}")
        if not (0.0 <= epoch_s < math.inf and 0.0 <= elapsed_s < math.inf):
            raise ValueError(f"bad epoch frame: epoch_s {epoch_s}, elapsed_s {elapsed_s}")
        if tree is not self._tree:  # the same figures for every row until the next sample: listed once
            self._tree, self._tree_values = tree, tree.values()
        self._rows.append([epoch, rss, peak, None, py_blocks, epoch_s, elapsed_s, *self._tree_values, None, *metrics])

    def sync_epochs(self) -> None:
        """Write the rows added since, with one flush; fsync unless done less than FSYNC_INTERVAL_S ago.

        The recorder calls it after each batch it reads (every 50 ms at most
        while records arrive): one write for the batch, not one a row.
        """
        if self._rows:
            header = records.EPOCH_COLUMNS + (self.metric_names or ())
            rows, self._rows = self._rows, []
            self._guard(lambda: self._epochs.write(header, rows))
        now = time.monotonic()
        if now - self._synced_at >= FSYNC_INTERVAL_S:
            self._guard(self._epochs.sync)
            self._synced_at = now

    def samples(self, samples: list[records.Sample]) -> None:
        """Append timed samples."""
        if samples:
            self._guard(lambda: self._samples.write(records.SAMPLE_COLUMNS, [sample.row() for sample in samples]))

    def close(self) -> None:
        """Write the rows held, close both files (fsync'ing them); a failure to do so is kept in :attr:`failure`."""
        self.sync_epochs()
        for appender in (self._epochs, self._samples):
            try:
                appender.close()
            except OSError as exc:
                self.failure = self.failure or exc
