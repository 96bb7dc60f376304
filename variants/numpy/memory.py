"""Where the numpy variant's buffers come from: an arena allocated once, and small ufunc buffers.

Plans for different batch sizes (the full batch, a shorter last batch, the test
set) run one after another and never need each other's contents, so they view
the same storage: the arena allocates each named buffer once, for the first
(largest) plan, and hands later plans a view of its first elements.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

# Elements per ufunc buffer while an epoch runs.  NumPy 2.x buffers a ufunc whose
# operands are strided differently (our col2im adds) in chunks of ``bufsize``
# elements: 8192 by default, i.e. up to 200 KB allocated and freed per call.  With
# 64 the iterator buffers only when the contiguous core is shorter than that, and
# then in chunks of at most a few KiB.  Multiple of 16, as NumPy 1.x requires.
EPOCH_UFUNC_BUFSIZE = 64


class Arena:
    """Named float/bool/int buffers allocated on first request; later requests view their start."""

    def __init__(self) -> None:
        self._storage: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        """A C-contiguous ``shape`` view of buffer ``name``; allocates it, zero-filled, on first use."""
        size = math.prod(shape)
        flat = self._storage.get(name)
        if flat is None:
            flat = self._storage[name] = np.zeros(size, dtype=dtype)
        if flat.size < size or flat.dtype != np.dtype(dtype):
            # Plans must be built largest first; anything else is a bug in the caller.
            raise ValueError(f"arena buffer {name!r} holds {flat.size} {flat.dtype}, asked {size} {np.dtype(dtype)}")
        return flat[:size].reshape(shape)

    @property
    def nbytes(self) -> int:
        """Bytes held by all buffers."""
        return sum(flat.nbytes for flat in self._storage.values())


@contextmanager
def small_ufunc_buffers(size: int = EPOCH_UFUNC_BUFSIZE) -> Iterator[None]:
    """Run the block with NumPy's ufunc buffer size set to ``size`` elements, then restore it."""
    old = np.setbufsize(size)
    try:
        yield
    finally:
        np.setbufsize(old)
