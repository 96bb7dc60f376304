"""Who keeps the growth: from an object allocated at a growing site, referrers outwards to what really holds it.

Called in the tracer's child (:mod:`harness.worker.tracing`) for the largest
growing sites.  For each, the largest live object allocated there
(:mod:`harness.worker.heap.targets`: NumPy arrays and untracked containers
too) is followed outwards, one ``gc.get_referrers`` scan per hop:

- weak references and weak containers keep nothing alive, and a
  ``contextvars.Context`` only mirrors what it holds: never followed;
- a link the collector cannot see is followed through what ``targets`` found
  (a NumPy view's ``.base``, reported with the line that made the view; an
  untracked dict);
- an instance's attribute reads ``Class.attr`` whether or not its ``__dict__``
  has been materialised (a materialised one is a separate dict whose referrer
  is the instance: the two hops are one link);
- a frame is a root only while it runs or is a suspended generator's: a frame
  kept by a traceback is a link, so a stored exception is named by what holds
  it (``loop.errors[0].__traceback__.tb_frame.f_locals['batch']``);
- roots are named for what they are: the loop object, a function's local, a
  module global, a class attribute (``logging.Logger.manager``: a module-level
  registry), a closure, an ``atexit`` callback, a thread's thread-local
  storage.  When the loop is one referrer among others, the others are followed
  a few hops first: a registry that also holds the object is what must let go.

Cost: a scan of up to 200,000 live containers and up to :data:`KEEPER_HOPS`
referrer scans of the heap per site.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Any

from harness.worker.heap.targets import find_targets, size_of
from harness.worker.heap.walk import Walk, root_of

KEEPER_SITES = 3  # the largest growing sites whose keepers are looked for
KEEPER_HOPS = 40  # referrer hops per chain (each hop is one gc.get_referrers scan of the heap)
LOOKAHEAD_HOPS = 12  # hops followed from the loop's fellow referrers to find a registry
REGISTRIES = ("global", "class", "atexit", "thread-local")  # roots that outlive the loop: named before it


def thread_counts() -> Counter[str]:
    """Live threads by name without its number ("ThreadPoolExecutor": 57): a thread leak shows here."""
    return Counter(thread.name.split("_")[0].rstrip("0123456789-") or thread.name for thread in threading.enumerate())


def find_keepers(
    sites: list[tuple[str, int]], loop: object | None = None, own: tuple[object, ...] = (), forked: bool = False
) -> list[dict[str, Any]]:
    """For each site, its largest live object and the chain of referrers to its root; sites with none are left out.

    ``loop`` is the loop object the worker holds (named "loop" in paths);
    ``own`` are the worker's containers that hold it, never followed;
    ``forked``: this is the tracer's child, which may test atexit's callbacks by unregistering them.
    """
    found, hidden = find_targets(sites)
    keepers: list[dict[str, Any]] = []
    ignore = {id(found), id(hidden), id(sys._getframe()), *(id(o) for o in own), *(id(v) for v in found.values())}
    for site in sites:
        objects = found.get(site) or []
        if not objects:
            continue
        walk = Walk(objects[0], loop, ignore, hidden, atexit_ok=forked)
        about = {"file": site[0], "line": site[1], "target": walk.steps[0], "target_bytes": size_of(objects[0])}
        keepers.append(about | chain(walk, KEEPER_HOPS, lookahead=True))
        walk.mine.clear()
        del walk, objects
    return keepers


def chain(walk: Walk, hops: int, *, lookahead: bool) -> dict[str, Any]:
    """Follow referrers from ``walk.current`` until a root: the holder, the chain outwards and the access path."""
    for _ in range(hops):
        root = walk.at_root()
        if root is not None:
            return walk.result(root)
        if walk.follow_hidden():
            continue
        referrers = walk.referrers()
        if not referrers:
            return walk.result(walk.dead_end())
        if lookahead and walk.loop is not None and len(referrers) > 1 and any(map(walk.is_loop, referrers)):
            found = _registry(walk, walk.hold([ref for ref in referrers if not walk.is_loop(ref)]))
            if found is not None:
                return found
        pick = walk.best(referrers)
        del referrers
        root = root_of(walk, pick)
        if root is not None:
            return walk.result(root)
        walk.step(pick)
        del pick
    return walk.result({"kind": "unknown", "name": None, "text": "the hop limit ran out"})


def _registry(walk: Walk, others: list[object]) -> dict[str, Any] | None:
    """A module-level registry among the loop's fellow referrers, followed a few hops each: the first one found."""
    for other in walk.hold(sorted(others, key=walk.rank)):
        root = root_of(walk, other)
        if root is not None:
            if root["kind"] in REGISTRIES:
                return walk.result(root) | {"also_held_by": "the loop object"}
            continue
        branch = walk.branch(other)
        if branch is None:
            continue
        result = chain(branch, LOOKAHEAD_HOPS, lookahead=False)
        if (result.get("holder") or {}).get("kind") in REGISTRIES:
            return result | {"also_held_by": "the loop object"}
    return None
