"""The loader variant's training set, and the two ways its workers can hold it.

K training images: the seed's 150 first (``make_dataset``'s training set, in
order), then K - 150 more from the seed's own generator (:func:`variants.data.band_images`,
p = 0.95, classes still interleaved) on a third, independent random stream of
the run's seed.  So K = 150 is exactly the seed's training set, K < 150 its
first K images, and the test set is always the seed's 30, whatever K: the
accuracy of a large run can be set beside the seed's.

A store is what the workers read: :class:`ArrayStore` (the fixed default, one
float64 array sliced) or :class:`ListStore` (the ``copy-on-read`` leak, every
image a Python list of floats).  Both give the same float64 batches, bit for bit.
"""

from __future__ import annotations

import itertools
from typing import Protocol

import numpy as np

from variants.data import TRAIN_P, band_images, make_dataset
from variants.network import CLASSES

# SeedSequence(seed).spawn(2) gives data.py its data (key 0) and parameter (key 1) streams; key 2 is a
# third child of the same seed, independent of both, so the extra images never shift the seed's numbers.
EXTRA_STREAM_KEY = 2

Images = np.ndarray  # (n, 1, 12, 12) float64
Labels = np.ndarray  # (n,) int64


def draw_training_set(seed: int, samples: int) -> tuple[Images, Labels]:
    """``samples`` training images and labels: the seed's 150 first, then more of the same kind."""
    data = make_dataset(seed)
    seed_n = len(data.train_labels)
    if samples <= seed_n:
        return data.train_images[:samples].copy(), data.train_labels[:samples].copy()
    extra = samples - seed_n
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(EXTRA_STREAM_KEY,)))
    per_class = -(-extra // CLASSES)  # whole classes drawn, the surplus of the last one dropped
    images, labels = band_images(rng, per_class, TRAIN_P)
    # band_images starts its interleave at class 0, and 150 is a multiple of 3: sample i is class i % 3 throughout.
    return np.concatenate([data.train_images, images[:extra]]), np.concatenate([data.train_labels, labels[:extra]])


def batch_bounds(samples: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch in order, as the numpy variant cuts its training set."""
    return [(start, min(start + batch_size, samples)) for start in range(0, samples, batch_size)]


class Store(Protocol):
    """The training set as a worker reads it."""

    def batch(self, start: int, stop: int) -> tuple[Images, Labels]:
        """A new batch array of samples start..stop-1 and their labels (what a loader's collate makes)."""
        ...


class ArrayStore:
    """The fixed default: all images in one float64 array, read by slicing; no per-sample Python objects."""

    def __init__(self, images: Images, labels: Labels) -> None:
        self.images = np.ascontiguousarray(images, dtype=np.float64)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)

    def batch(self, start: int, stop: int) -> tuple[Images, Labels]:
        """Copies of the slices: reading the shared pages writes nothing to them."""
        return self.images[start:stop].copy(), self.labels[start:stop].copy()


class ListStore:
    """The ``copy-on-read`` leak: each image a Python list of its 144 pixels as float objects.

    Built in the training process before the workers fork, so every worker
    starts with the lists' pages shared copy-on-write.  Reading a list in
    Python takes a reference to each float it yields, writing the float's
    reference count: the page holding it is copied into the worker.  The
    garbage collector of each process walks the lists too (they are tracked
    containers), writing their headers.  After a worker has read every image,
    it holds its own copy of nearly all of the dataset's pages.
    """

    def __init__(self, images: Images, labels: Labels) -> None:
        self.shape = images.shape[1:]
        self.pixels = int(np.prod(self.shape))
        self.images: list[list[float]] = images.reshape(len(images), self.pixels).tolist()
        self.labels: list[int] = labels.tolist()

    def batch(self, start: int, stop: int) -> tuple[Images, Labels]:
        """The lists of samples start..stop-1 decoded into a new float64 array, pixel by pixel."""
        rows = self.images[start:stop]
        # LEAK: iterating yields a new reference to every float, so each float's refcount is written and its
        # page copied out of the shared memory; np.array(rows) does the same (measured: the same copy).
        flat = np.fromiter(itertools.chain.from_iterable(rows), np.float64, count=len(rows) * self.pixels)
        return flat.reshape(len(rows), *self.shape), np.array(self.labels[start:stop], dtype=np.int64)
