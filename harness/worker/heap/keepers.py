"""Who keeps the growth: referrer chains from an object allocated at a growing site up to what holds it.

Called by the tracer (:mod:`harness.worker.tracing`) for the largest growing sites of
a trace; each chain ends at a function's local, a global or a closure, which
``explain`` shows as the line to look at.
"""

from __future__ import annotations

import dis
import gc
import itertools
import os
import tracemalloc
import types
from typing import Any

from harness.worker.attribution import HARNESS_DIR, attribute, type_name

KEEPER_SITES = 3  # the largest growing sites whose keepers are looked for
KEEPER_SCAN = 200_000  # live containers examined to find an object allocated at those sites
KEEPER_HOPS = 30  # referrer hops per chain (each hop is one gc.get_referrers scan of the heap)
# The tracer's frames and ours hold references while a chain is followed: they are not keepers.
_OWN_FILES = (__file__, os.path.join(os.path.dirname(__file__), "tracing.py"))
_TERMINALS = (
    types.FrameType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    types.FunctionType,
    types.ModuleType,
)


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
    frame = (
        holder
        if isinstance(holder, types.FrameType)
        else getattr(holder, "gi_frame", None) or getattr(holder, "cr_frame", None)
    )
    if frame is not None:
        name = _name_in(frame.f_locals, child)
        code = frame.f_code
        return {
            "kind": "local" if name else "frame",
            "file": code.co_filename,
            "function": code.co_qualname,
            "name": name,
            "line": (_assigned_line(code, name) if name else None) or frame.f_lineno,
            "suspended_at": frame.f_lineno,
        }
    if isinstance(holder, types.ModuleType):
        return {
            "kind": "global",
            "file": getattr(holder, "__file__", None),
            "function": None,
            "name": _name_in(vars(holder), child),
            "line": None,
            "suspended_at": None,
        }
    code = getattr(holder, "__code__", None)
    return {
        "kind": "closure",
        "file": getattr(code, "co_filename", None),
        "function": getattr(holder, "__qualname__", None),
        "name": None,
        "line": getattr(code, "co_firstlineno", None),
        "suspended_at": None,
    }


def _step(holder: object, child: object) -> str:
    """One link of a chain: "list[3]", "dict['key']", "variants.lists.ListsCNN.snapshots"."""
    kind = type_name(type(holder))
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
        ref
        for ref in gc.get_referrers(obj)
        if id(ref) not in ignore and not (isinstance(ref, types.FrameType) and ref.f_code.co_filename in _OWN_FILES)
    ]


def _chain(target: object, ignore: set[int]) -> dict[str, Any]:
    """Follow referrers from ``target`` until a frame, generator, function or module holds it.

    "chain" lists the objects from the target outwards, each as the container and
    where in it the previous one sits; "holder" is what keeps the last of them
    (None when the chain ends at an object nothing visible to the gc refers to,
    such as the loop object the worker holds, or when the hops ran out).
    """
    steps = [type_name(type(target))]
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
            if code is not None and code.co_filename.startswith(HARNESS_DIR):
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


def find_keepers(sites: list[tuple[str, int]], own: tuple[object, ...] = ()) -> list[dict[str, Any]]:
    """For each site, one live container allocated there and the chain of referrers that keeps it alive.

    Cost: a scan of up to KEEPER_SCAN live containers (newest first) and up to
    KEEPER_HOPS full referrer scans per site.  Sites that allocate only objects
    the gc does not track (floats, NumPy buffers) get no chain.  ``own`` are
    the worker's containers that hold the loop: referrers never followed.
    """
    found = _allocated_at(set(sites))
    keepers: list[dict[str, Any]] = []
    ignore = {id(found), *(id(container) for container in own)}
    for site in sites:
        if site in found:
            keepers.append({"file": site[0], "line": site[1], **_chain(found[site], ignore)})
    return keepers
