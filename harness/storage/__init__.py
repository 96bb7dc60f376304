"""Storage: run directories on disk (docs/SCHEMA.md), between the stages that write them and those that read them.

The recording stage makes a run directory (:mod:`~harness.storage.layout`) and
appends to it as the run goes (:mod:`~harness.storage.writer`): rows flushed as
they arrive, meta.json replaced whole, so a run that died keeps everything
recorded up to then.  The growth, guard and report stages read it back
(:mod:`~harness.storage.reader`: :func:`load_run`, :func:`load_runs`) as
metadata and pandas tables; a script run that marks no epochs gets windows of
its samples as its epochs (:mod:`~harness.storage.windows`).
"""

from harness.storage.layout import (
    EPOCHS,
    LINES,
    META,
    SAMPLES,
    TRACE,
    WORKER_LOG,
    check_results_dir,
    create_run_dir,
    iso,
    new_run_id,
    slug,
    utc_now,
)
from harness.storage.reader import Run, find_run_dirs, find_runs, load_run, load_runs, read_meta
from harness.storage.windows import window_epochs
from harness.storage.writer import FSYNC_INTERVAL_S, CsvAppender, RunWriter, cannot_record, store_growth, write_meta

__all__ = [
    "EPOCHS",
    "FSYNC_INTERVAL_S",
    "LINES",
    "META",
    "SAMPLES",
    "TRACE",
    "WORKER_LOG",
    "CsvAppender",
    "Run",
    "RunWriter",
    "cannot_record",
    "check_results_dir",
    "create_run_dir",
    "find_run_dirs",
    "find_runs",
    "iso",
    "load_run",
    "load_runs",
    "new_run_id",
    "read_meta",
    "slug",
    "store_growth",
    "utc_now",
    "window_epochs",
    "write_meta",
]
