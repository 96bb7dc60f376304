"""A script's epochs when it marks none: windows of its timed samples, computed on reading, never stored.

The parent samples the worker and its tree every 50 ms and streams the samples
to samples.csv (:mod:`harness.recording.supervise`).  A script run without
``mark_epoch`` calls (or with ``--window SECONDS``) is judged on windows of
those samples: :func:`window_epochs` turns them into a table with the columns
of epochs.csv, one row per window, which every reader then treats as epochs.
Pure (a table in, a table out), and applied by :func:`harness.storage.load_run`,
so ``run``, ``explain``, ``check``, ``report`` and ``compare`` all see the same
windows, and a run that died keeps every window its samples reached.

Window k (1-based) holds the samples taken in [(k - 1) w, k w) seconds after the
script started.  Per window:

- ``rss_bytes``: the median of the worker's RSS samples.  A window has no phase
  in the training cycle, as an epoch's end has: the median ignores a transient
  peak, wherever in the window it falls, and follows a steady leak (by half a
  window's growth, which the slope does not see);
- ``peak_rss_bytes``: the highest RSS sampled up to the window's end;
- ``tree_pss_bytes``, ``tree_uss_bytes``: the median of the window's exact
  readings (empty when none fell in it, as for an epoch row);
- ``children``, ``children_rss_bytes``: the window's last sample;
- ``heap_bytes``, ``py_blocks``: empty (only the worker measures them, at marks);
- ``epoch_s``: the window's length; ``elapsed_s``: the time of its end.

The last window is left out until the samples pass its end (the run stopped in
it); a window without samples (the recorder stalled, Ctrl-Z) has no row.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.records import EPOCH_COLUMNS, INTEGER_COLUMNS

MEDIAN_COLUMNS = ("rss_bytes", "tree_pss_bytes", "tree_uss_bytes")
LAST_COLUMNS = ("children", "children_rss_bytes")


def window_epochs(samples: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """One epochs.csv-like row per complete window of ``window_s`` seconds of ``samples`` (see the module docstring)."""
    if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or not 0 < window_s < math.inf:
        raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
    number = {
        name: pd.to_numeric(samples[name], errors="coerce")
        if name in samples.columns
        else pd.Series(math.nan, samples.index)
        for name in ("t_s", *MEDIAN_COLUMNS, *LAST_COLUMNS)
    }
    taken = (number["t_s"] >= 0) & number["rss_bytes"].notna()  # before 0: the worker starting, not the script
    window = (number["t_s"][taken] // window_s).astype("int64")
    complete = window < window.max() if not window.empty else window.astype(bool)  # the last window is still open
    window = window[complete]
    values = pd.DataFrame({name: series[taken][complete] for name, series in number.items() if name != "t_s"})
    grouped = values.groupby(window, sort=True)
    table = pd.DataFrame(index=grouped.size().index)
    for name in MEDIAN_COLUMNS:
        table[name] = grouped[name].median().round()
    for name in LAST_COLUMNS:
        table[name] = grouped[name].last()
    table["peak_rss_bytes"] = grouped["rss_bytes"].max().cummax()
    table["epoch"] = table.index + 1
    table["epoch_s"] = float(window_s)
    table["elapsed_s"] = (table.index + 1) * float(window_s)
    table["heap_bytes"] = math.nan
    table["py_blocks"] = math.nan
    table["tracer_bytes"] = math.nan  # tracemalloc is not sampled by the parent
    columns = {
        name: table[name].astype("Int64") if name in INTEGER_COLUMNS else table[name].astype("float64")
        for name in EPOCH_COLUMNS
    }
    return pd.DataFrame(columns).reset_index(drop=True)
