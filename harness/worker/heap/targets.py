"""Live objects allocated at a growing site, including those the garbage collector cannot list, and the links to them.

The collector lists only tracked containers (lists, dicts, instances), and
``gc.get_referrers`` finds only those.  A site that grows by NumPy arrays,
bytes or bytearrays, or by *untracked* dicts and lists (CPython stops tracking a
dict whose keys and values cannot form cycles, such as a cache of tuples to
arrays), allocates nothing the collector lists.  Such objects are reached from
the tracked containers' referents, descending through untracked dicts and
lists and through NumPy views' ``.base``; :func:`find_targets` records, for
each, the object that holds it (``hidden``), for the chain to follow where
``gc.get_referrers`` sees nothing.
"""

from __future__ import annotations

import ctypes
import gc
import heapq
import itertools
import sys
import tracemalloc
import weakref
from collections.abc import Iterable
from typing import Any

from harness.worker.heap.attribution import Frame, attribute

KEEPER_SCAN = 200_000  # live containers examined to find objects allocated at the sites
CANDIDATES = 8  # objects kept per site: the largest of them is followed


def array_types() -> tuple[type, ...]:
    """NumPy's array type once the loop has imported NumPy (never imported here: the worker stays light)."""
    numpy = sys.modules.get("numpy")
    return (numpy.ndarray,) if numpy is not None else ()


WEAK = (
    weakref.ReferenceType,
    weakref.ProxyType,
    weakref.CallableProxyType,
    weakref.WeakSet,
    weakref.WeakValueDictionary,
    weakref.WeakKeyDictionary,
)


def traceback_of(obj: object) -> tuple[Frame, ...] | None:
    """Where tracemalloc saw ``obj`` allocated (frames most recent first), or None."""
    raw = getattr(tracemalloc, "_get_object_traceback", None)
    if raw is not None:
        frames = raw(obj)
        if frames is None and type(obj) is list and obj:
            frames = _items_traceback(obj)
        return frames  # type: ignore[no-any-return]
    public = tracemalloc.get_object_traceback(obj)
    return tuple((f.filename, f.lineno) for f in reversed(public)) if public else None


def _items_traceback(obj: list[Any]) -> tuple[Frame, ...] | None:
    """Where a list's item array was allocated: a list reused from CPython's free list has no traceback of its own
    (it predates the trace), so a loop keeping one new list per epoch would otherwise show no target at all."""
    if _BY_ADDRESS is None:
        return None
    items = ctypes.c_void_p.from_address(id(obj) + _OB_ITEM).value  # PyListObject: refcnt, type, size, ob_item
    return _BY_ADDRESS(0, items) if items else None  # type: ignore[no-any-return]


_OB_ITEM = 3 * ctypes.sizeof(ctypes.c_void_p)
try:  # CPython's C API: the traceback of any traced block by address (tracemalloc's domain 0)
    _BY_ADDRESS: Any = ctypes.pythonapi._PyTraceMalloc_GetTraceback
    _BY_ADDRESS.restype, _BY_ADDRESS.argtypes = ctypes.py_object, [ctypes.c_uint, ctypes.c_size_t]
except AttributeError:  # pragma: no cover - another interpreter
    _BY_ADDRESS = None


def size_of(obj: object) -> int:
    """``sys.getsizeof``: for an array that owns its data, the data included."""
    try:
        return sys.getsizeof(obj)
    except TypeError:
        return 0


def is_weak(obj: object) -> bool:
    """A weak reference, a weak container, or a container of weak references only (a WeakSet's inner set)."""
    if isinstance(obj, WEAK):
        return True
    if isinstance(obj, (set, dict, list)) and obj:
        values = obj.values() if isinstance(obj, dict) else obj
        return all(isinstance(value, weakref.ReferenceType) for value in itertools.islice(values, 16))
    return False


class _Collector:
    """The CANDIDATES largest live objects per site."""

    def __init__(self, sites: Iterable[Frame]) -> None:
        self.found: dict[Frame, list[tuple[int, int, object]]] = {site: [] for site in sites}
        self._attributed: dict[tuple[Frame, ...], Frame] = {}
        self._order = itertools.count()

    def consider(self, obj: object) -> None:
        if is_weak(obj):
            return
        frames = traceback_of(obj)
        if not frames:
            return
        site = self._attributed.get(frames)
        if site is None:
            site = self._attributed[frames] = attribute(frames)
        bucket = self.found.get(site)
        if bucket is None:
            return
        entry = (size_of(obj), next(self._order), obj)  # a site allocates a big buffer and small bookkeeping alike
        if len(bucket) < CANDIDATES:
            heapq.heappush(bucket, entry)
        elif entry[0] > bucket[0][0]:
            heapq.heapreplace(bucket, entry)


def find_targets(sites: Iterable[Frame]) -> tuple[dict[Frame, list[object]], dict[int, object]]:
    """Per site, live objects allocated there (largest first); and ``hidden``: id of an object -> what holds it."""
    collector = _Collector(sites)
    # Newest first: the young generations (small), then the old one from its end, where the last promoted sit.
    newest = list(
        itertools.islice(
            itertools.chain(gc.get_objects(0), gc.get_objects(1), reversed(gc.get_objects(2))), KEEPER_SCAN
        )
    )
    for obj in newest:
        collector.consider(obj)
    hidden: dict[int, object] = {}
    seen: set[int] = set()
    todo: list[tuple[Any, object]] = []
    for container in newest:
        todo.extend((child, container) for child in gc.get_referents(container) if _hidden(child))
    del newest
    while todo:
        obj, holder = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if not gc.is_tracked(holder):
            hidden[id(obj)] = holder
        if isinstance(obj, (dict, list)):
            hidden[id(obj)] = holder
            todo.extend((child, obj) for child in gc.get_referents(obj) if _hidden(child))
            continue
        collector.consider(obj)
        view, base = obj, getattr(obj, "base", None)
        while isinstance(base, array_types()) and id(base) not in seen:  # a view's bases: reachable only through it
            seen.add(id(base))
            hidden[id(base)] = view
            collector.consider(base)
            view, base = base, getattr(base, "base", None)
    found = {site: [entry[2] for entry in sorted(bucket, reverse=True)] for site, bucket in collector.found.items()}
    return found, hidden


def _hidden(obj: object) -> bool:
    """An object gc.get_referrers cannot be asked about usefully: untracked buffers and containers."""
    return not gc.is_tracked(obj) and isinstance(obj, (dict, list, bytes, bytearray, *array_types()))
