"""Where the growth comes from (``run --trace``): tracemalloc sites and gc object types, in the worker.

The worker starts tracing before it imports and builds the loop, so allocations
made while building it count.  After a warm-up epoch it takes a baseline
(allocation sites and live object counts by type); then it compares the current
state against that baseline and writes ``trace.json``:

- every few seconds as an *interim* trace (``"final": false``), so a run the
  parent kills at the memory cap still leaves the picture at its last interim
  point; the interval is at least :data:`MIN_INTERVAL_S` and at least ten times
  what the last trace cost, so tracing a big heap never takes more than about a
  tenth of the run;
- at the end of the run, or when the parent stops it (timeout, Ctrl-C), as the
  *final* trace (``"final": true``).

Attribution (which line an allocation is charged to) is in
:mod:`harness.worker.attribution`; the chains of referrers that keep a growing site's
objects alive are in :mod:`harness.worker.keepers`.
"""

from __future__ import annotations

import gc
import itertools
import operator
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.jsonfile import write_json_atomic
from harness.worker.attribution import attribute, is_bookkeeping, type_name
from harness.worker.keepers import KEEPER_SITES, find_keepers

# Traceback depth kept by tracemalloc: enough to climb out of NumPy's Python wrappers to the
# caller's line.  Each frame costs time on every allocation: one epoch of the pure-Python
# `lists` variant took 0.6 s untraced, 4.4 s traced with 1 frame, 11 s with 3, 33 s with 10
# (CPU seconds, measured under load); `run --trace-frames 1` suits loops that allocate in their own code.
FRAMES = 10
MAX_FRAMES = 100
TOP = 25  # sites and types stored in trace.json
MIN_INTERVAL_S = 2.0  # at least this long between interim traces
BUDGET = 10.0  # and at least BUDGET times what the last trace took
TRACE_SCHEMA_VERSION = 1


def baseline_epoch(epochs: int) -> int:
    """The epoch after which the baseline is taken: past warm-up, early in the run."""
    return max(1, min(3, epochs // 4))


def count_types(exclude: object = None) -> Counter[str]:
    """Live gc-tracked objects by type name (one pass over gc.get_objects()), less those reachable from ``exclude``.

    A full collection first: cyclic garbage the collector has not reached yet is
    not live, and how much of it there is depends on when the last collection ran
    (seen: a baseline counted 534 lists without the collection and 518 with it).
    """
    gc.collect()
    by_type = Counter(map(type, gc.get_objects()))
    by_type.subtract(map(type, _tracked_within(exclude)))
    return Counter({type_name(cls): count for cls, count in by_type.items() if count > 0})


def _tracked_within(root: object) -> list[object]:
    """gc-tracked objects reachable from ``root`` (the tracer's own baseline), ``root`` included."""
    if root is None:
        return []
    seen: dict[int, object] = {}
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or not gc.is_tracked(obj) or isinstance(obj, type):
            continue
        seen[id(obj)] = obj
        todo.extend(gc.get_referents(obj))
    return list(seen.values())


@dataclass
class HeapState:
    """What one trace point saw: traced heap, sites and live object counts by type."""

    epoch: int
    heap_bytes: int
    sites: dict[tuple[str, int], list[int]]  # (file, line) -> [size, count]
    stacks: dict[tuple[str, int], tuple[tuple[str, int], ...]]  # largest traceback per site
    types: Counter[str]


def _group_tracebacks(snapshot: tracemalloc.Snapshot) -> list[tuple[tuple[tuple[str, int], ...], int, int]]:
    """(frames most recent first, size, count) per distinct traceback of a snapshot.

    ``Snapshot.statistics`` and ``filter_traces`` work in Python per block, and
    with tracemalloc tracing their own allocations they take minutes on a heap of
    a million blocks.  Sorting the raw traces by traceback and summing each run
    allocates nothing per block: 0.15 s for a million blocks (measured under load).
    """
    raw = getattr(snapshot.traces, "_traces", None)
    if raw is None:  # the private list moved: fall back to the public, slower API
        return [
            (tuple((f.filename, f.lineno) for f in reversed(stat.traceback)), stat.size, stat.count)
            for stat in snapshot.statistics("traceback")
        ]
    by_traceback = operator.itemgetter(2)  # raw trace: (domain, size, frames, total_nframe)
    groups = []
    for frames, traces in itertools.groupby(sorted(raw, key=by_traceback), key=by_traceback):
        group = list(traces)
        groups.append((frames, sum(map(operator.itemgetter(1), group)), len(group)))
    return groups


def take_state(epoch: int, baseline: HeapState | None = None) -> HeapState:
    """Snapshot the traced heap now and group it by attributed site; tracemalloc must be tracing.

    Object types are counted first, before this state's own containers exist,
    and without those of ``baseline``, which the tracer keeps alive.
    """
    types = count_types(exclude=baseline)
    snapshot = tracemalloc.take_snapshot()
    heap = tracemalloc.get_traced_memory()[0]
    sites: dict[tuple[str, int], list[int]] = {}
    stacks: dict[tuple[str, int], tuple[tuple[str, int], ...]] = {}
    largest: dict[tuple[str, int], int] = {}
    for frames, size, count in _group_tracebacks(snapshot):
        if is_bookkeeping(frames):
            continue  # the worker's and the tracer's own (the baseline, the last record sent)
        site = attribute(frames)
        entry = sites.setdefault(site, [0, 0])
        entry[0] += size
        entry[1] += count
        if size > largest.get(site, -1):
            largest[site] = size
            stacks[site] = frames
    del snapshot
    return HeapState(epoch, heap, sites, stacks, types)


def compare(baseline: HeapState, final: HeapState, *, final_run: bool, top: int = TOP) -> dict[str, Any]:
    """The trace.json dict: top growing sites and object types between two states."""
    site_rows: list[dict[str, Any]] = []
    for site, (size, count) in final.sites.items():
        old_size, old_count = baseline.sites.get(site, (0, 0))
        if size - old_size > 0:
            site_rows.append(
                {
                    "file": site[0],
                    "line": site[1],
                    "size_diff": size - old_size,
                    "count_diff": count - old_count,
                    "size": size,
                    "count": count,
                    "stack": [f"{name}:{line}" for name, line in final.stacks.get(site, ())],
                }
            )
    site_rows.sort(key=lambda row: row["size_diff"], reverse=True)
    type_rows: list[dict[str, Any]] = [
        {"type": name, "count_diff": count - baseline.types.get(name, 0), "count": count}
        for name, count in final.types.items()
        if count - baseline.types.get(name, 0) > 0
    ]
    type_rows.sort(key=lambda row: row["count_diff"], reverse=True)
    return {
        "schema_version": TRACE_SCHEMA_VERSION,
        "final": final_run,
        "baseline_epoch": baseline.epoch,
        "final_epoch": final.epoch,
        "heap_baseline_bytes": baseline.heap_bytes,
        "heap_final_bytes": final.heap_bytes,
        "frames": tracemalloc.get_traceback_limit() if tracemalloc.is_tracing() else None,
        "attribution": "most recent frame outside the stdlib, site-packages and the harness",
        "sites": site_rows[:top],
        "types": type_rows[:top],
    }


class Tracer:
    """The worker's side of --trace: start early, baseline after warm-up, trace.json at intervals and at the end."""

    def __init__(self, path: Path, epochs: int, frames: int = FRAMES, own: tuple[object, ...] = ()) -> None:
        self.path = path
        self.own = own  # the worker's own containers holding the loop: a chain ends at the loop, not at them
        self.frames = frames
        self.baseline_at = baseline_epoch(epochs)
        self.baseline: HeapState | None = None
        self._last_end = 0.0
        self._last_cost = 0.0

    def start(self) -> None:
        """Start tracemalloc; call before the loop's module is imported and the loop built."""
        tracemalloc.start(self.frames)

    @staticmethod
    def heap_bytes() -> int:
        """Bytes currently allocated by Python and traced (tracemalloc's "current")."""
        return tracemalloc.get_traced_memory()[0]

    def after_epoch(self, epoch: int) -> None:
        """Take the baseline at its epoch; afterwards write an interim trace when one is due."""
        if self.baseline is None:
            if epoch >= self.baseline_at:
                started = time.monotonic()
                self.baseline = take_state(epoch)
                self._last_end = time.monotonic()
                self._last_cost = self._last_end - started
            return
        if time.monotonic() - self._last_end >= max(MIN_INTERVAL_S, BUDGET * self._last_cost):
            self.write(epoch, final=False)

    def write(self, epoch: int, *, final: bool) -> bool:
        """Compare the heap now with the baseline and write trace.json; False before the baseline."""
        if self.baseline is None:
            return False
        started = time.monotonic()
        trace = compare(self.baseline, take_state(epoch, self.baseline), final_run=final)
        sites = [(site["file"], site["line"]) for site in trace["sites"][:KEEPER_SITES]]
        trace["keepers"] = find_keepers(sites, self.own)
        write_json_atomic(self.path, trace)
        self._last_end = time.monotonic()
        self._last_cost = self._last_end - started
        return True
