"""A user's loop whose helper leaks native memory through ctypes: what ``run --lines`` finds and tracemalloc cannot.

Softmax regression in mini-batches, in NumPy.  Once per epoch ``helper`` asks
the C library for 512 KiB of scratch memory (as a call into a C extension
would), writes every page of it and reads a checksum back; with ``--leak native``
it never frees it.  tracemalloc sees nothing (the memory never passes through
Python's allocators) and the Python heap stays flat, while RSS grows 512 KiB an
epoch::

    python -m harness run --variant examples/native_leak.py:NativeLeakLoop --leak native --epochs 20 \\
        --lines examples/native_leak.py:helper
    python -m harness explain results/<the run directory it printed>
"""

from __future__ import annotations

import ctypes
from typing import ClassVar

import numpy as np

from harness import RunConfig

LIBC = ctypes.CDLL(None)
LIBC.malloc.restype = ctypes.c_void_p
LIBC.malloc.argtypes = [ctypes.c_size_t]
LIBC.free.argtypes = [ctypes.c_void_p]

BLOCK = 512 * 1024  # bytes of C memory the helper takes each epoch
SAMPLES = 4096
BATCH = 256
FEATURES = 32
CLASSES = 10


def helper(size: int, leak: bool) -> int:
    """Scratch memory from C for the epoch's bookkeeping: malloc'd and written at once; the fix frees it."""
    block = ctypes.memset(LIBC.malloc(size), 1, size)  # every page written: resident from here on
    checksum = sum(ctypes.string_at(block, 64))
    if not leak:
        LIBC.free(block)
    return checksum


class NativeLeakLoop:
    """Mini-batch gradient descent on a linear softmax classifier; a helper that takes C memory each epoch."""

    DESCRIPTION = "softmax regression in mini-batches whose helper takes C memory each epoch (a user's loop)"
    LEAKS: ClassVar[dict[str, str]] = {"native": "the helper never frees its 512 KiB of C memory: one block an epoch"}

    def __init__(self, config: RunConfig) -> None:
        rng = np.random.default_rng(config.seed)
        centres = rng.normal(size=(CLASSES, FEATURES))
        self.labels = rng.integers(CLASSES, size=SAMPLES)
        self.inputs = centres[self.labels] + rng.normal(size=(SAMPLES, FEATURES))
        self.weights = np.zeros((FEATURES, CLASSES))
        self.learning_rate = config.learning_rate
        self.leak = config.leak == "native"

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the data in mini-batches, then the helper's bookkeeping."""
        losses = []
        for start in range(0, SAMPLES, BATCH):
            inputs = self.inputs[start : start + BATCH]
            labels = self.labels[start : start + BATCH]
            logits = inputs @ self.weights
            logits -= logits.max(axis=1, keepdims=True)
            predictions = np.exp(logits)
            predictions /= predictions.sum(axis=1, keepdims=True)
            rows = np.arange(len(labels))
            losses.append(float(-np.log(predictions[rows, labels]).mean()))
            predictions[rows, labels] -= 1.0
            self.weights -= self.learning_rate * (inputs.T @ predictions) / len(labels)
        checksum = helper(BLOCK, self.leak)
        return {"loss": float(np.mean(losses)), "checksum": float(checksum)}
