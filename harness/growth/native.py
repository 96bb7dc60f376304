"""Whether a leak is native memory: RSS grows while Python's own objects do not.

Traced, the Python heap (tracemalloc) says it: RSS grows and the traced heap
explains under a quarter of it.  Untraced, the worker still records
``py_blocks`` every epoch, the blocks of Python's small-object allocator: every
live object of at most 512 bytes (floats, ints, small lists, dicts, tuples).
Each block is at most 512 bytes, so blocks can explain at most 512 bytes per
new block of growth; when that bound is under a quarter of RSS's growth, the
growth is outside Python's small objects: native memory (NumPy arrays' data,
bytes and other large buffers, a C extension's or a library's own allocations,
memory leaked through ctypes).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.formatting import format_rate
from harness.growth.verdict import MIN_EPOCHS, NATIVE_SHARE, fit_column

BLOCK_BYTES = 512  # the largest request Python's small-object allocator serves


def native_growth(
    epochs: pd.DataFrame, rss: dict[str, Any], heap: dict[str, Any] | None
) -> tuple[bool | None, str | None]:
    """(whether RSS's growth is native, a note saying so or qualifying it); (None, None) when it cannot be told."""
    if heap is not None:
        return _traced(rss, heap)
    if rss["verdict"] != "leak" or "py_blocks" not in epochs.columns or epochs["py_blocks"].notna().sum() < MIN_EPOCHS:
        return None, None
    blocks = fit_column(epochs, "py_blocks", 0.0, MIN_EPOCHS)
    if blocks["ci_high"] is None:
        return None, None
    per_epoch = max(blocks["ci_high"], 0.0)
    if per_epoch * BLOCK_BYTES >= NATIVE_SHARE * rss["bytes_per_epoch"]:
        return False, None
    per = rss.get("per", "epoch")  # "window" for a script judged per window of samples
    return True, (
        f"RSS grows {format_rate(rss['bytes_per_epoch'], per)} but Python's small objects only "
        f"{blocks['bytes_per_epoch']:+.1f} blocks/{per} (at most {format_rate(per_epoch * BLOCK_BYTES, per)}): "
        "the growth is native memory, outside Python's small-object allocator (NumPy arrays' data, large buffers, "
        "a C extension's or a library's own allocations)"
    )


def _traced(rss: dict[str, Any], heap: dict[str, Any]) -> tuple[bool, str | None]:
    if rss["verdict"] != "leak":
        return False, None
    if heap["verdict"] != "flat" and heap["ci_high"] >= NATIVE_SHARE * rss["bytes_per_epoch"]:
        return False, None
    per = rss.get("per", "epoch")
    rate, heap_rate = format_rate(rss["bytes_per_epoch"], per), format_rate(heap["bytes_per_epoch"], per)
    if heap["verdict"] == "leak":
        # tracemalloc sees a real leak, a small part of RSS's growth.
        rest = (
            "the rest is native memory beside it"
            if rss.get("less")  # RSS already less tracemalloc's own tables
            else "much of the rest is likely tracemalloc's own bookkeeping for the traced blocks"
        )
        return False, f"RSS grows {rate} and the Python heap {heap_rate}: the heap leak is real (see the sites); {rest}"
    return True, (
        f"RSS grows {rate} but the Python heap only {heap_rate}: the growth is native memory or allocator "
        "fragmentation, which tracemalloc cannot see"
    )
