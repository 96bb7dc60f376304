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

Attribution: an allocation is charged to the most recent frame of its traceback
that is the user's or variant's code, that is neither in the Python standard
library, nor in site-packages (our own ``variants`` package excepted, wherever
it is installed), nor in the harness.  When no such frame was
recorded (the traceback holds :data:`FRAMES` frames), the most recent frame
outside the stdlib and the harness is used, then the most recent frame.  This
is ``Snapshot.compare_to(..., "lineno")`` with the key moved from the allocating
line inside NumPy or the stdlib to the line in the loop that asked for it.
Allocations whose traceback holds a harness frame and otherwise only stdlib
frames are the harness's own bookkeeping (the tracer's baseline, the last record
sent) and are left out.
"""

from __future__ import annotations

import dis
import gc
import itertools
import json
import operator
import os
import sysconfig
import time
import tracemalloc
import types
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

_HARNESS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Our variants are installed beside the harness, in site-packages after a plain `pip install .`:
# they count as the user's code, not as a third-party library.
_VARIANTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "variants") + os.sep
_STDLIB_DIRS = tuple(
    os.path.abspath(p) + os.sep for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_THIRD_PARTY_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def baseline_epoch(epochs: int) -> int:
    """The epoch after which the baseline is taken: past warm-up, early in the run."""
    return max(1, min(3, epochs // 4))


def _is_stdlib(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap> and friends
        return True
    if any(marker in filename for marker in _THIRD_PARTY_MARKERS):
        return False  # site-packages lives under the stdlib directory
    return filename.startswith(_STDLIB_DIRS)


def _is_third_party(filename: str) -> bool:
    return any(marker in filename for marker in _THIRD_PARTY_MARKERS) and not filename.startswith(_VARIANTS_DIR)


def _is_harness(filename: str) -> bool:
    return filename.startswith(_HARNESS_DIR)


def attribute(frames: Iterable[tuple[str, int]]) -> tuple[str, int]:
    """The (file, line) an allocation is charged to; ``frames`` are ordered most recent first."""
    frames = list(frames)
    for frame in frames:
        name = frame[0]
        if not _is_stdlib(name) and not _is_third_party(name) and not _is_harness(name):
            return frame
    for frame in frames:
        if not _is_stdlib(frame[0]) and not _is_harness(frame[0]):
            return frame
    return frames[0] if frames else ("<unknown>", 0)


def is_bookkeeping(frames: Iterable[tuple[str, int]]) -> bool:
    """True for the harness's own allocations: a harness frame, and nothing but the stdlib besides.

    A traceback of stdlib frames alone is kept: it may be the user's call into the
    stdlib, cut off at the frame limit before it reached the user's code.
    """
    names = [frame[0] for frame in frames]
    return any(_is_harness(name) for name in names) and all(_is_harness(name) or _is_stdlib(name) for name in names)


def _type_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    if module in (None, "builtins"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def count_types(exclude: object = None) -> Counter[str]:
    """Live gc-tracked objects by type name (one pass over gc.get_objects()), less those reachable from ``exclude``."""
    by_type = Counter(map(type, gc.get_objects()))
    by_type.subtract(map(type, _tracked_within(exclude)))
    return Counter({_type_name(cls): count for cls, count in by_type.items() if count > 0})


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


# -- who keeps the growth: referrer chains from a grown object up to what holds it --------------

KEEPER_SITES = 3  # the largest growing sites whose keepers are looked for
KEEPER_SCAN = 200_000  # live containers examined to find an object allocated at those sites
KEEPER_HOPS = 30  # referrer hops per chain (each hop is one gc.get_referrers scan of the heap)
_TERMINALS = (types.FrameType, types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType, types.FunctionType, types.ModuleType)


def _assigned_line(code: types.CodeType, name: str) -> int | None:
    """The first line of ``code`` that stores to the variable ``name``."""
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("STORE_FAST", "STORE_DEREF", "STORE_NAME") and instruction.argval == name:
            return instruction.positions.lineno if instruction.positions else None
    return None


def _name_in(namespace: dict[str, Any], child: object) -> str | None:
    return next((name for name, value in namespace.items() if value is child), None)


def _holder(holder: object, child: object) -> dict[str, Any]:
    """Where ``holder`` keeps ``child``: a function's local (with the line assigning it), a global, a closure."""
    frame = holder if isinstance(holder, types.FrameType) else getattr(holder, "gi_frame", None) or getattr(holder, "cr_frame", None)
    if frame is not None:
        name = _name_in(frame.f_locals, child)
        code = frame.f_code
        return {
            "kind": "local" if name else "frame", "file": code.co_filename, "function": code.co_qualname, "name": name,
            "line": (_assigned_line(code, name) if name else None) or frame.f_lineno, "suspended_at": frame.f_lineno,
        }  # fmt: skip
    if isinstance(holder, types.ModuleType):
        return {"kind": "global", "file": getattr(holder, "__file__", None), "function": None,
                "name": _name_in(vars(holder), child), "line": None, "suspended_at": None}  # fmt: skip
    code = getattr(holder, "__code__", None)
    return {"kind": "closure", "file": getattr(code, "co_filename", None), "function": getattr(holder, "__qualname__", None),
            "name": None, "line": getattr(code, "co_firstlineno", None), "suspended_at": None}  # fmt: skip


def _step(holder: object, child: object) -> str:
    """One link of a chain: "list[3]", "dict['key']", "variants.lists.ListsCNN.snapshots"."""
    kind = _type_name(type(holder))
    if isinstance(holder, (list, tuple)):
        index = next((i for i, item in enumerate(holder) if item is child), None)
        return f"{kind}[{index}]" if index is not None else kind
    if isinstance(holder, dict):
        key = next((k for k, v in holder.items() if v is child), None)
        return f"{kind}[{key!r}]"[:80] if key is not None else kind
    attributes = getattr(holder, "__dict__", None)
    name = _name_in(attributes, child) if isinstance(attributes, dict) else None
    return f"{kind}.{name}" if name else kind


def _referrers(obj: object, ignore: set[int]) -> list[object]:
    """Containers referring to ``obj``, less the tracer's own (its frames and bookkeeping)."""
    return [
        ref for ref in gc.get_referrers(obj)
        if id(ref) not in ignore and not (isinstance(ref, types.FrameType) and ref.f_code.co_filename == __file__)
    ]  # fmt: skip


def _chain(target: object, ignore: set[int]) -> dict[str, Any]:
    """Follow referrers from ``target`` until a frame, generator, function or module holds it.

    "chain" lists the objects from the target outwards, each as the container and
    where in it the previous one sits; "holder" is what keeps the last of them
    (None when the chain ends at an object nothing visible to the gc refers to,
    such as the loop object the worker holds, or when the hops ran out).
    """
    steps = [_type_name(type(target))]
    seen = {id(target)}
    current = target
    for _ in range(KEEPER_HOPS):
        # get_referrers scans the whole heap: the list holding the previous step must be gone by then.
        referrers = [ref for ref in _referrers(current, ignore) if id(ref) not in seen]
        terminal = next((ref for ref in referrers if isinstance(ref, _TERMINALS)), None)
        following = referrers[0] if referrers and terminal is None else None
        del referrers
        if terminal is not None:
            code = getattr(terminal, "f_code", None) or getattr(terminal, "gi_code", None)
            if code is not None and code.co_filename.startswith(_HARNESS_DIR):
                return {"holder": None, "chain": steps}  # the worker's own reference to the loop
            return {"holder": _holder(terminal, current), "chain": steps}
        if following is None:
            return {"holder": None, "chain": steps}
        steps.append(_step(following, current))
        seen.add(id(following))
        current = following
        del following
    return {"holder": None, "chain": steps}


def _allocated_at(sites: set[tuple[str, int]]) -> dict[tuple[str, int], object]:
    """One live container allocated at each site, newest first, scanning at most KEEPER_SCAN."""
    found: dict[tuple[str, int], object] = {}
    # The raw traceback (frames most recent first) and one attribution per distinct traceback:
    # building Frame objects and attributing for each of 200,000 objects took seconds.
    raw_traceback = getattr(tracemalloc, "_get_object_traceback", None)
    attributed: dict[tuple[tuple[str, int], ...], tuple[str, int]] = {}
    # Newest first: the young generations (small), then the old one from its end, where the last
    # promoted sit (a leak's objects are old by the time the trace is taken; a big heap's start is not).
    newest_first = itertools.chain(gc.get_objects(0), gc.get_objects(1), reversed(gc.get_objects(2)))
    for obj in itertools.islice(newest_first, KEEPER_SCAN):
        if raw_traceback is not None:
            frames = raw_traceback(obj)
        else:
            public = tracemalloc.get_object_traceback(obj)
            frames = tuple((frame.filename, frame.lineno) for frame in reversed(public)) if public else None
        if not frames:
            continue
        site = attributed.get(frames)
        if site is None:
            site = attributed[frames] = attribute(frames)
        if site in sites and site not in found:
            found[site] = obj
            if len(found) == len(sites):
                break
    return found


def find_keepers(sites: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """For each site, one live container allocated there and the chain of referrers that keeps it alive.

    Cost: a scan of up to KEEPER_SCAN live containers (newest first) and up to
    KEEPER_HOPS full referrer scans per site.  Sites that allocate only objects
    the gc does not track (floats, NumPy buffers) get no chain.
    """
    found = _allocated_at(set(sites))
    keepers: list[dict[str, Any]] = []
    ignore = {id(found)}
    for site in sites:
        if site in found:
            keepers.append({"file": site[0], "line": site[1], **_chain(found[site], ignore)})
    return keepers


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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path``, fsync it, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Tracer:
    """The worker's side of --trace: start early, baseline after warm-up, trace.json at intervals and at the end."""

    def __init__(self, path: Path, epochs: int, frames: int = FRAMES) -> None:
        self.path = path
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
        trace["keepers"] = find_keepers([(site["file"], site["line"]) for site in trace["sites"][:KEEPER_SITES]])
        write_json_atomic(self.path, trace)
        self._last_end = time.monotonic()
        self._last_cost = self._last_end - started
        return True
