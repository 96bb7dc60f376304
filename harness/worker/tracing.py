"""Where the growth comes from (``run --trace``): the trainer's side of tracing, which allocates nothing of its own.

The worker starts tracemalloc before it imports and builds the loop, so
allocations made while building it count.  Every trace point (a state of the
traced heap by site and of live objects by type, :mod:`harness.worker.heap.state`)
is taken in a forked child of the trainer (:mod:`harness.worker.heap.child`),
which also compares it with the baseline (kept on disk beside trace.json,
never in the trainer), finds what keeps the growth alive
(:mod:`harness.worker.heap.keepers`) and writes ``trace.json``:

- the baseline after an early epoch (:func:`baseline_epoch`);
- every few seconds an *interim* trace (``"final": false``), so a run the
  parent kills at the memory cap still leaves the picture at its last interim
  point; at least :data:`MIN_INTERVAL_S` apart and ten times what the last
  one cost, so tracing never takes more than about a tenth of the run;
- at the end of the run, or when the parent stops it, the *final* trace.

RSS then holds no tracer work, only tracemalloc's own tables (a trace per
live block): :meth:`Tracer.own_bytes` is recorded each epoch (``tracer_bytes``)
and the verdict of a traced run judges RSS less it (:mod:`harness.growth.summary`).

Frames.  ``--trace-frames N`` is how much of each site's stack is shown, from
the user's line outwards; tracemalloc keeps at least N frames, and more when
needed to reach the user's code: a probe at epoch 1 is compared with the
baseline, and when a growing site has no user frame within the kept frames
(``np.full`` called from the loop, with one frame kept, stops in NumPy),
tracemalloc is restarted with four times as many (at most twice) and the
baseline taken again.  The Python heap series goes on across a restart: blocks
traced before it count at their size then (:meth:`Tracer.heap_bytes`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.jsonfile import write_json_atomic
from harness.worker.heap import child
from harness.worker.heap.attribution import is_marker, needs_deeper
from harness.worker.heap.keepers import KEEPER_SITES, find_keepers, thread_counts
from harness.worker.heap.state import HeapState, compare, take_state

# Frames of each site's stack shown (and at least kept): enough to climb out of NumPy's Python wrappers to the
# caller's line.  Each kept frame costs time on every allocation: one epoch of the pure-Python `lists` variant
# took 0.6 s untraced, 4.4 s traced with 1 frame, 11 s with 3, 33 s with 10 (CPU seconds, measured under load).
FRAMES = 10
MAX_FRAMES = 100
DEEPER = 4  # a restart keeps this many times the frames
MAX_RESTARTS = 2
MIN_INTERVAL_S = 2.0  # at least this long between interim traces
BUDGET = 10.0  # and at least BUDGET times what the last trace took
TIMEOUT_S = 120.0  # a tracer child taking longer is killed (a deadlocked fork), and tracing stops
BASELINE_FILE = ".trace-baseline.pickle"


def baseline_epoch(epochs: int) -> int:
    """The epoch after which the baseline is taken: past warm-up, early in the run."""
    return max(1, min(3, epochs // 4))


class Tracer:
    """The trainer's side of --trace: start early, baseline after warm-up, trace.json at intervals and at the end."""

    def __init__(
        self,
        path: Path,
        epochs: int,
        frames: int = FRAMES,
        own: tuple[object, ...] = (),
        announce: Callable[[int | None, bool], None] | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        self.path = path
        self.own = own  # the worker's containers holding the loop: own[0][0] is the loop, named as such by keepers
        self.frames = frames  # shown
        self.kept = frames  # tracemalloc's traceback limit, deepened on demand
        self.baseline_at = baseline_epoch(epochs)
        self.stored = path.with_name(BASELINE_FILE)
        self.stage = "start"  # "probe" once epoch 1 is stored, "baseline" once the baseline is
        self.announce = announce
        self.stopping = stopping
        self.fork = child.can_fork
        self.mode = "fork"
        self.heap_offset = 0
        self.restarts: list[dict[str, int]] = []
        self.notes: list[str] = []
        self.rss_left_bytes = 0
        self.threads: dict[str, dict[str, int]] = {}  # plain dicts: not gc-tracked, not counted as the loop's
        self.stopped = False  # a child timed out: no more traces
        self._last_end = 0.0
        self._last_cost = 0.0

    def start(self) -> None:
        """Start tracemalloc; call before the loop's module is imported and the loop built."""
        tracemalloc.start(self.kept)

    def heap_bytes(self) -> int:
        """Bytes allocated by Python and traced (tracemalloc's "current"), continued across a restart."""
        return tracemalloc.get_traced_memory()[0] + self.heap_offset

    @staticmethod
    def own_bytes() -> int:
        """tracemalloc's own memory (its tables of traces and tracebacks): part of RSS, not the loop's."""
        return tracemalloc.get_tracemalloc_memory() if tracemalloc.is_tracing() else 0

    def after_epoch(self, epoch: int) -> None:
        """Take the probe and the baseline at their epochs; afterwards write an interim trace when one is due."""
        if self.stopped:
            return
        if self.stage != "baseline":
            if epoch >= self.baseline_at:
                self._run(epoch, "baseline")
            elif self.stage == "start":
                self._run(epoch, "probe")
            return
        if time.monotonic() - self._last_end >= max(MIN_INTERVAL_S, BUDGET * self._last_cost):
            self.write(epoch, final=False)

    def write(self, epoch: int, *, final: bool) -> bool:
        """Compare the heap now with the baseline and write trace.json; False before the baseline."""
        if self.stage != "baseline" or self.stopped:
            return False
        return self._run(epoch, "final" if final else "interim") == "ok"

    # -- the work, in a child (or here when there is no fork) --------------------------------------------------
    def _run(self, epoch: int, kind: str) -> str:
        self.threads["final" if kind in ("final", "interim") else kind] = dict(thread_counts())
        deepen = kind in ("baseline", "interim") and len(self.restarts) < MAX_RESTARTS and self.kept < MAX_FRAMES

        def work() -> int:
            return self._work(epoch, kind, deepen)

        if self.fork():
            self.mode = "fork"
            stop = None if kind == "final" else self.stopping
            outcome = child.run_forked(work, timeout_s=TIMEOUT_S, announce=self.announce, abandon=stop)
        else:
            self.mode = "in-process"
            outcome = child.run_here(work)
            self.rss_left_bytes = max(self.rss_left_bytes, outcome.rss_left_bytes)
        self._last_end = time.monotonic()
        self._last_cost = outcome.seconds
        if outcome.result == "timeout":
            self.stopped = True
            self._note(f"a trace child took over {TIMEOUT_S:g} s at epoch {epoch} and was killed; tracing stopped")
        elif outcome.result == "failed":
            self._note(f"the {kind} trace at epoch {epoch} failed (see worker.log)")
        elif outcome.result == "deepen":
            self._restart(epoch)
        elif kind in ("probe", "baseline") and outcome.result == "ok":
            self.stage = kind
        return outcome.result

    def _work(self, epoch: int, kind: str, deepen: bool) -> int:
        """One trace point (in the child): store it, or compare it and write trace.json; DEEPEN when needed."""
        state = take_state(epoch, self.frames)
        if kind in ("probe", "baseline") and self.stage != "probe":
            self._store(state)
            return child.OK
        with open(self.stored, "rb") as handle:
            before: HeapState = pickle.load(handle)
        trace = compare(before, state, final_run=kind == "final")
        wanted = deepen and needs_deeper([(row["file"], row["line"], row["size_diff"]) for row in trace["sites"]])
        if kind == "baseline":  # the probe is compared only to see whether deeper tracebacks are needed
            if not wanted:
                self._store(state)
            return child.DEEPEN if wanted else child.OK
        sites = [(row["file"], row["line"]) for row in trace["sites"] if not is_marker(row["file"])]
        loop = self.own[0][0] if self.own and self.own[0] else None  # type: ignore[index]
        trace["keepers"] = find_keepers(sites[:KEEPER_SITES], loop=loop, own=self.own, forked=self.mode == "fork")
        trace["frames"] = self.frames
        trace["threads"] = self.threads
        trace["tracer"] = self._summary()
        write_json_atomic(self.path, trace)
        return child.DEEPEN if wanted else child.OK

    def _store(self, state: HeapState) -> None:
        tmp = self.stored.with_name(self.stored.name + ".tmp")
        with open(tmp, "wb") as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.stored)

    def _restart(self, epoch: int) -> None:
        """Keep more frames: restart tracemalloc (its tables go back to the system) and take the baseline again."""
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)
        self.kept = min(MAX_FRAMES, self.kept * DEEPER)
        tracemalloc.start(self.kept)
        self.heap_offset += before
        self.restarts.append({"epoch": epoch, "frames_kept": self.kept})
        self.stage, self.baseline_at = "start", epoch + 1

    def _summary(self) -> dict[str, Any]:
        """trace.json's ``tracer``: where the work ran, the frames kept and restarts, notes."""
        return {
            "mode": self.mode,
            "frames_kept": self.kept,
            "restarts": list(self.restarts),
            "rss_left_bytes": self.rss_left_bytes,
            "last_cost_s": round(self._last_cost, 3),
            "notes": list(self.notes),
        }

    def _note(self, text: str) -> None:
        self.notes.append(text)

    def finish(self) -> None:
        """Remove the stored baseline (the run is over)."""
        with contextlib.suppress(OSError):
            self.stored.unlink()
