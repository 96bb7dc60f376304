"""Garbage-aware readings: what the worker does to Python's garbage collector before each epoch's memory reading.

Reference cycles a loop drops (a closed matplotlib figure, an exception and its
traceback, a parent and child pointing at each other) are freed only when the
collector examines the generation they sit in.  Those that lived long enough
to be promoted to the oldest generation wait for a full collection, which the
interpreter runs rarely and later the bigger the heap is, so RSS climbs in a
staircase for tens of epochs before garbage is freed: a false leak
(matplotlib/matplotlib#23701, #8519).  What is done, between ``train_epoch``
and the reading (``run --gc-collect``, the plugin's ``gc_collect=``):

- ``auto`` (the default): after epoch 1, one full collection and
  ``gc.freeze()``, which moves everything alive then (the loop's model, its
  data, the libraries it imported) to the permanent generation that no
  collection examines again; after each later epoch a full collection only when
  the collector reclaimed something since the previous reading (a callback in
  :data:`gc.callbacks` notes it as it happens; asking ``gc.get_stats()`` each
  epoch instead cost 6-18 us after a 1 ms NumPy epoch): a loop that makes no
  cyclic garbage pays nothing more, one that does pays a collection of what is
  new since epoch 1 only (1.6 ms an epoch for a loop that plots a figure,
  against 33 ms for a collection of the whole heap).  Objects alive at epoch 1
  that later become cyclic garbage are never freed: a bounded, one-time amount,
  never growth per epoch.
- ``always``: a full collection before every reading, nothing frozen: the most
  faithful reading, at the price of walking the whole heap every epoch (a
  NumPy loop of 1 ms epochs runs about 7 times slower).
- ``never``: nothing, as before this option existed.

Why not a young-generation collection: the garbage that matters was promoted
while it was alive (a figure lives through a whole epoch), so only a full
collection reaches it.  :meth:`GcReadings.summary` is what meta.json records
under ``gc``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

POLICIES = ("auto", "always", "never")
DEFAULT_POLICY = "auto"


def check_policy(policy: Any) -> str:
    """``policy`` when it is one of :data:`POLICIES`; ValueError quoting it otherwise."""
    if policy not in POLICIES:
        raise ValueError(f"invalid gc policy {policy!r}: expected one of {', '.join(POLICIES)}")
    return str(policy)


class _Reclaimed:
    """A :data:`gc.callbacks` entry: set when a collection has freed something (cyclic garbage was found)."""

    def __init__(self) -> None:
        self.found = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["collected"]:
            self.found = True


class GcReadings:
    """Applies a policy before each reading and counts what it cost."""

    def __init__(self, policy: str = DEFAULT_POLICY) -> None:
        self.policy = check_policy(policy)
        self.collections = 0
        self.gc_seconds = 0.0
        self.train_seconds = 0.0
        self.frozen: int | None = None  # objects moved to the permanent generation after epoch 1 (auto)
        self._reclaimed = _Reclaimed()
        if self.policy == "auto":
            gc.callbacks.append(self._reclaimed)

    def close(self) -> None:
        """Stop watching the collector."""
        if self._reclaimed in gc.callbacks:
            gc.callbacks.remove(self._reclaimed)

    def before_reading(self, epoch: int, epoch_s: float) -> None:
        """Called after ``train_epoch(epoch)`` returned, before memory is read; ``epoch_s`` is its duration."""
        self.train_seconds += epoch_s
        if self.policy == "always":
            self._collect()
        elif self.policy == "auto":
            if self.frozen is None:
                self._collect()
                gc.freeze()
                self.frozen = gc.get_freeze_count()
            elif self._reclaimed.found:
                self._collect()

    def _collect(self) -> None:
        started = time.perf_counter()
        gc.collect()
        self._reclaimed.found = False  # what this collection freed is not garbage still waiting
        self.gc_seconds += time.perf_counter() - started
        self.collections += 1

    def summary(self) -> dict[str, Any]:
        """What meta.json records: the policy, full collections made, their seconds and share of training time."""
        share = self.gc_seconds / self.train_seconds if self.train_seconds > 0 else 0.0
        return {
            "policy": self.policy,
            "collections": self.collections,
            "seconds": round(self.gc_seconds, 6),
            "share_of_training": round(share, 5),
            "frozen_objects": self.frozen,
        }
