"""One chain of referrers being followed outwards: its steps, its access path, and the roots it can end at.

:class:`Walk` is the state of one chain (:mod:`harness.worker.heap.keepers`
drives it); :func:`root_of` says whether a referrer is a root and names it.
Lists built here to hold objects are registered in ``mine``: never taken for a keeper.
"""

from __future__ import annotations

import atexit
import contextvars
import dis
import gc
import inspect
import os
import sys
import types
from typing import Any

from harness.worker.heap.attribution import HARNESS_DIR, attribute, type_name
from harness.worker.heap.child import HELD_THREAD_LOCALS
from harness.worker.heap.targets import array_types, is_weak, traceback_of

_INCIDENTAL = (contextvars.Context,)  # mirrors what it holds: never the keeper


class Walk:
    """A chain from ``target`` outwards: steps ("list[3]"), path links (".errors", "[3]"), the current object."""

    __slots__ = ("atexit_ok", "current", "extra", "hidden", "ignore", "links", "live", "loop", "mine", "seen", "steps")

    def __init__(
        self, target: object, loop: object | None, ignore: set[int], hidden: dict[int, object], atexit_ok: bool = False
    ) -> None:
        self.current = target
        self.loop = loop
        self.ignore = ignore | {id(self)}
        self.hidden = hidden
        self.mine: dict[int, object] = {}
        self.seen = {id(target)}
        self.steps = [type_name(type(target))]
        self.links: list[str] = []
        self.extra: dict[str, Any] = {}
        self.live = _live_frames()
        self.ignore.add(id(self.live))  # it holds the running frames: never a keeper
        self.atexit_ok = atexit_ok  # may unregister from atexit to test a callback (in the tracer's child only)

    # -- looking around ----------------------------------------------------------------------------------------
    def is_loop(self, obj: object) -> bool:
        """The loop object, or its materialised attribute dict."""
        return self.loop is not None and (obj is self.loop or obj is _dict_of(self.loop))

    def referrers(self) -> list[object]:
        """What refers to the current object, less weak references, our own objects and what the chain has seen."""
        found = [
            ref
            for ref in gc.get_referrers(self.current)
            if id(ref) not in self.ignore
            and id(ref) not in self.mine
            and id(ref) not in self.seen
            and not is_weak(ref)
            and not isinstance(ref, _INCIDENTAL)
            and not _own_frame(ref)
        ]
        return self.hold(found)

    def rank(self, ref: object) -> int:
        """How likely ``ref`` is the keeper to name: the loop, a running frame, a module or class, a container."""
        if self.is_loop(ref):
            return 0
        if isinstance(ref, types.FrameType):
            return 1 if id(ref) in self.live else 4
        if isinstance(ref, (types.GeneratorType, types.ModuleType, type)) or ref is HELD_THREAD_LOCALS:
            return 2
        if isinstance(ref, dict) and ("__name__" in ref or "__module__" in ref):
            return 2
        if isinstance(ref, (list, dict, tuple, set, BaseException, types.TracebackType)) or hasattr(ref, "__dict__"):
            return 3
        return 5

    def best(self, referrers: list[object]) -> object:
        """The referrer to follow."""
        return min(referrers, key=self.rank)

    # -- moving ---------------------------------------------------------------------------------------------------
    def at_root(self) -> dict[str, Any] | None:
        """The loop root when the chain has reached the loop object."""
        return {"kind": "loop", "name": "loop"} if self.loop is not None and self.current is self.loop else None

    def follow_hidden(self) -> bool:
        """Step through a link the collector cannot see (a view's base, an untracked container); False if none."""
        holder = self.hidden.get(id(self.current))
        array = array_types()
        if holder is None or id(holder) in self.seen or (gc.is_tracked(holder) and not isinstance(holder, array)):
            return False
        if isinstance(holder, array):
            frames = traceback_of(holder)
            self.extra["view_line"] = list(attribute(frames)) if frames else None
            self._push(type_name(type(holder)) + " (view)", ".base", holder)
        else:
            self.step(holder)
        return True

    def step(self, holder: object) -> None:
        """Move to ``holder``; an instance whose materialised ``__dict__`` was the last step folds into "Class.attr"."""
        previous = self.current
        key = self.extra.pop("_dict_key", None)
        if isinstance(previous, dict) and isinstance(key, str) and self.links and _dict_of(holder) is previous:
            self.steps.pop(), self.links.pop()  # the dict's step becomes the instance's attribute
            return self._push(f"{type_name(type(holder))}.{key}", f".{key}", holder)
        if isinstance(holder, dict) and self.loop is not None and holder is _dict_of(self.loop):
            link = f".{_key_of(holder, previous)}"  # the loop's materialised __dict__: "Loop.attr", at the loop
            return self._push(f"{type_name(type(self.loop))}{link}", link, self.loop)
        label, link = _link(holder, previous)
        if isinstance(holder, dict):
            self.extra["_dict_key"] = _key_of(holder, previous)
        self._push(label, link, holder)

    def hold(self, objects: list[object]) -> list[object]:
        """Register a list of ours that holds objects, so referrer scans never take it for a keeper."""
        self.mine[id(objects)] = objects
        return objects

    def _push(self, label: str, link: str, holder: object) -> None:
        self.steps.append(label)
        self.links.append(link)
        self.seen.add(id(holder))
        self.current = holder

    def branch(self, other: object) -> Walk | None:
        """A walk that goes on through ``other`` instead (for the registry lookahead), or None."""
        if id(other) in self.seen:
            return None
        branch = Walk(self.current, None, self.ignore | {id(self)}, self.hidden, self.atexit_ok)
        branch.mine = self.mine
        branch.seen = self.seen | {id(self.loop), id(_dict_of(self.loop))}
        branch.steps, branch.links, branch.extra = list(self.steps), list(self.links), dict(self.extra)
        branch.step(other)
        self.ignore.add(id(branch))
        self.mine[id(branch)] = branch  # kept while the walk lasts: its id must not name another object
        return branch

    # -- ending ---------------------------------------------------------------------------------------------------
    def dead_end(self) -> dict[str, Any]:
        """Nothing the collector sees refers to the current object: a running function's local, atexit, or native."""
        current = self.current
        for frame in self.live.values():  # a running function's locals (a script's main()) are not gc-tracked
            if not frame.f_code.co_filename.startswith(HARNESS_DIR) and _key_of(frame.f_locals, current) is not None:
                return root_of(self, frame) or {"kind": "frame", "name": None, "text": "a running function"}
        if self.atexit_ok and callable(current):
            count = atexit._ncallbacks()
            atexit.unregister(current)  # in the tracer's child only: the trainer's registrations stay
            if atexit._ncallbacks() < count:
                return {"kind": "atexit", "name": "atexit", "text": "a callback registered with atexit"}
        text = "nothing the garbage collector can see (a C extension's reference, thread-local storage)"
        return {"kind": "unknown", "name": None, "text": text}

    def result(self, root: dict[str, Any]) -> dict[str, Any]:
        """The keeper entry: holder (None for the loop), chain outwards, access path root-first, extras."""
        name = root.get("name")
        path = (name or "?") + "".join(reversed(self.links))
        holder = None if root["kind"] == "loop" else {k: root.get(k) for k in _HOLDER_KEYS}
        extra = {key: value for key, value in self.extra.items() if not key.startswith("_")}
        return {"holder": holder, "chain": list(self.steps), "path": path, **extra}


_HOLDER_KEYS = ("kind", "file", "function", "name", "line", "suspended_at", "text")


def root_of(walk: Walk, ref: object) -> dict[str, Any] | None:
    """The root ``ref`` is when it holds the current object (a running frame, a module, a class...), else None."""
    current = walk.current
    frame = _running(ref, walk.live)
    if frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(HARNESS_DIR):
            return {"kind": "loop", "name": "loop"}  # the worker's own reference (to the loop or its last record)
        name = _key_of(frame.f_locals, current)
        line = (_assigned_line(code, name) if name else None) or frame.f_lineno
        kind = "local" if name else "frame"
        return _root(kind, name, code.co_filename, line, code.co_qualname, frame.f_lineno)
    module = ref if isinstance(ref, types.ModuleType) else _module_of(ref)
    if module is not None:
        name = _key_of(vars(module), current)
        return _root("global", f"{module.__name__}.{name}", getattr(module, "__file__", None), None, None, None)
    cls = ref if isinstance(ref, type) else _class_of(ref)
    if cls is not None:
        name = _key_of(vars(cls), current)
        file = getattr(sys.modules.get(cls.__module__), "__file__", None)
        return _root("class", f"{cls.__module__}.{cls.__qualname__}.{name}", file, None, None, None)
    if ref is HELD_THREAD_LOCALS:
        return _root("thread-local", "threading.local", None, None, None, None)
    if isinstance(ref, types.FunctionType):
        code = ref.__code__
        return _root("closure", ref.__qualname__, code.co_filename, code.co_firstlineno, ref.__qualname__, None)
    return None


_SUSPENDED = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
_GENERATOR_CODE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _running(ref: object, live: dict[int, types.FrameType]) -> types.FrameType | None:
    """The frame of ``ref`` when it is a root: a frame running now, or a suspended generator's (or its frame)."""
    if isinstance(ref, _SUSPENDED):
        return getattr(ref, "gi_frame", None) or getattr(ref, "cr_frame", None) or getattr(ref, "ag_frame", None)
    if isinstance(ref, types.FrameType) and (id(ref) in live or ref.f_code.co_flags & _GENERATOR_CODE):
        return ref
    return None


def _root(kind: str, name: str | None, file: Any, line: int | None, function: Any, at: int | None) -> dict[str, Any]:
    return {"kind": kind, "name": name, "file": file, "line": line, "function": function, "suspended_at": at}


def _link(holder: object, child: object) -> tuple[str, str]:
    """(chain step, access path link) for ``holder`` holding ``child``."""
    kind = type_name(type(holder))
    if isinstance(holder, (list, tuple)):
        index = next((i for i, item in enumerate(holder) if item is child), None)
        return (f"{kind}[{index}]", f"[{index}]") if index is not None else (kind, "[?]")
    if isinstance(holder, dict):
        key = _key_of(holder, child)
        if key is not None:
            return f"{kind}[{key!r}]"[:80], f"[{key!r}]"[:60]
        return (f"{kind} key", ".keys()") if any(k is child for k in holder) else (kind, "[?]")
    for attr in ("tb_frame", "tb_next", "__traceback__", "__context__", "__cause__", "__self__", "__func__"):
        if getattr(holder, attr, None) is child:
            return kind, f".{attr}"
    if isinstance(holder, types.FrameType):
        name = _key_of(holder.f_locals, child)
        return kind, f".f_locals[{name!r}]" if name else ".f_locals"
    if isinstance(holder, types.CellType):  # a closure's variable
        return kind, ".cell_contents"
    attributes = _dict_of(holder)
    name = _key_of(attributes, child) if isinstance(attributes, dict) else None
    if isinstance(name, str):
        return f"{kind}.{name}", f".{name}"
    return kind, f"<{type(holder).__name__}>"


def _key_of(mapping: Any, value: object) -> Any:
    """The key under which ``mapping`` holds ``value`` (a plain loop: a generator would hold ``value`` in a cell)."""
    for key, item in mapping.items():
        if item is value:
            return key
    return None


def _dict_of(obj: object) -> object:
    try:
        return object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None


def _module_of(ref: object) -> types.ModuleType | None:
    """The module whose namespace ``ref`` is."""
    if not isinstance(ref, dict) or "__name__" not in ref:
        return None
    module = sys.modules.get(ref["__name__"]) if isinstance(ref["__name__"], str) else None
    if module is not None and getattr(module, "__dict__", None) is ref:
        return module
    return next((m for m in list(sys.modules.values()) if getattr(m, "__dict__", None) is ref), None)


def _class_of(ref: object) -> type | None:
    """The class whose namespace ``ref`` is (a class attribute's holder)."""
    if not isinstance(ref, dict) or "__module__" not in ref:
        return None
    for owner in gc.get_referrers(ref):
        if isinstance(owner, type) and any(inner is ref for inner in gc.get_referents(owner.__dict__)):
            return owner
    return None


def _assigned_line(code: types.CodeType, name: str) -> int | None:
    """The first line of ``code`` that stores to the variable ``name``."""
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("STORE_FAST", "STORE_DEREF", "STORE_NAME") and instruction.argval == name:
            return instruction.positions.lineno if instruction.positions else None
    return None


def _own_frame(ref: object) -> bool:
    """A frame of the tracer's own code (not the worker's run(), which holds the loop)."""
    if not isinstance(ref, types.FrameType) or not ref.f_code.co_filename.startswith(HARNESS_DIR):
        return False
    return os.sep + "heap" + os.sep in ref.f_code.co_filename or ref.f_code.co_filename.endswith("tracing.py")


def _live_frames() -> dict[int, types.FrameType]:
    """Frames running now on this process's threads, innermost first (in the tracer's child: the trainer's, copied)."""
    live: dict[int, types.FrameType] = {}
    for frame in sys._current_frames().values():
        walker: types.FrameType | None = frame
        while walker is not None:
            live[id(walker)] = walker
            walker = walker.f_back
    return live
