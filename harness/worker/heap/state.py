"""One trace point: the traced heap grouped by attributed site, and live objects by type; two of them compared.

Taken in the tracer's child process (:mod:`harness.worker.heap.child`), which
sees the trainer's heap as it was at the fork and may allocate as much as it
needs: nothing of it reaches the trainer's memory.
"""

from __future__ import annotations

import gc
import itertools
import operator
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from typing import Any

from harness.worker.heap.attribution import attribute, display_stack, is_bookkeeping, type_name

TOP = 25  # sites and types stored in trace.json
TRACE_SCHEMA_VERSION = 1

Site = tuple[str, int]


@dataclass
class HeapState:
    """What one trace point saw: traced heap, sites and live object counts by type."""

    epoch: int
    heap_bytes: int
    sites: dict[Site, list[int]]  # (file, line) -> [size, count]
    stacks: dict[Site, tuple[Site, ...]]  # the displayed part of the largest traceback per site
    types: Counter[str]


def count_types() -> Counter[str]:
    """Live gc-tracked objects by type name: one pass over ``gc.get_objects()``.

    No collection first: in the tracer's child a collection would run the
    trainer's finalisers a second time (a garbage pool's would end the loop's
    worker processes); the garbage-aware readings (:mod:`harness.worker.gc_readings`)
    keep what cyclic garbage is pending small.
    """
    by_type = Counter(map(type, gc.get_objects()))
    return Counter({type_name(cls): count for cls, count in by_type.items()})


def _group_tracebacks(snapshot: tracemalloc.Snapshot) -> list[tuple[tuple[Site, ...], int, int]]:
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


def take_state(epoch: int, display: int) -> HeapState:
    """Snapshot the traced heap now, grouped by attributed site; ``display`` frames of each site's stack are kept.

    Object types are counted first, before this state's own containers exist.
    """
    types = count_types()
    snapshot = tracemalloc.take_snapshot()
    heap = tracemalloc.get_traced_memory()[0]
    kept = tracemalloc.get_traceback_limit()
    sites: dict[Site, list[int]] = {}
    stacks: dict[Site, tuple[Site, ...]] = {}
    largest: dict[Site, int] = {}
    for frames, size, count in _group_tracebacks(snapshot):
        if is_bookkeeping(frames):
            continue  # the worker's own (the last record sent, the tracer's bookkeeping)
        site = attribute(frames, kept)
        entry = sites.setdefault(site, [0, 0])
        entry[0] += size
        entry[1] += count
        if size > largest.get(site, -1):
            largest[site] = size
            stacks[site] = display_stack(frames, display)
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
        "frames_kept": tracemalloc.get_traceback_limit() if tracemalloc.is_tracing() else None,
        "attribution": "innermost frame of the user's code (the stdlib, site-packages and the harness skipped)",
        "sites": site_rows[:top],
        "types": type_rows[:top],
    }
