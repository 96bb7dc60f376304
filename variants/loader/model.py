"""The numpy variant's CNN fed by forked data-loader workers, and the two best-known data-loader "leaks".

Everything that trains is the numpy variant's (:class:`~variants.numpy.BuffersCNN`):
parameters, nets, update, test metrics.  What changes is where an epoch's
batches come from: ``--option workers=N`` persistent worker processes forked
at construction (:mod:`~variants.loader.workers`) cut them from a training set
of ``--option samples=K`` images (:mod:`~variants.loader.dataset`), and the
training process turns each into the numpy variant's :class:`~variants.numpy.net.Batch`.
The batches, their order and so every number are the numpy variant's; at
K = 150 (the seed's training set) they agree with it to 1e-9.  ``workers=0``
prepares the batches in the training process, as ``DataLoader(num_workers=0)``.

Both leaks live in the workers, where a per-process RSS of the training
process cannot see them (pytorch/pytorch#13246 and its duplicates, e.g. #5902:
"the resident memory size of the python process itself does not grow"):

- ``copy-on-read``: the dataset as Python lists of floats, built before the
  fork and read by every worker; reading writes reference counts, so the
  shared pages are copied into each worker and the tree's PSS rises towards
  N + 1 copies, while the training process's RSS stays flat.  Fixed: one
  NumPy array, read by slicing.
- ``worker-cache``: each worker memoises every batch it serves, keyed by
  (epoch, batch): the workers grow by one dataset's worth of arrays an epoch
  between them, the training process not at all.  Fixed: no memo.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

from harness.interface import RunConfig
from harness.loops import check_leak
from variants.flops import epoch_flops
from variants.loader.dataset import ArrayStore, ListStore, Store, batch_bounds, draw_training_set
from variants.loader.options import LoaderOptions, loader_options
from variants.loader.workers import InlineLoader, WorkerPool
from variants.numpy.model import BuffersCNN
from variants.numpy.net import Batch


class LoaderCNN(BuffersCNN):
    """The numpy variant's CNN trained on batches prepared by persistent forked worker processes."""

    DESCRIPTION: ClassVar[str] = (
        "the numpy variant fed by N forked data-loader workers (--option workers=N, default 2) "
        "over K training images (--option samples=K, default 22500)"
    )
    LEAKS: ClassVar[Mapping[str, str]] = {
        "copy-on-read": "the dataset as Python lists of floats read by every worker: reference counts copy "
        "the shared pages into each one (pytorch/pytorch#13246)",
        "worker-cache": "persistent workers memoise every batch they serve, keyed by (epoch, batch): "
        "the workers grow every epoch, the training process does not",
    }
    NAME: ClassVar[str] = "loader"

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """Refuse bad options before anything is written (``run`` asks while checking the variant)."""
        loader_options(config.options)

    def __init__(self, config: RunConfig) -> None:
        """Check the options, draw the training set, build the numpy variant's model, then fork the workers."""
        check_leak(type(self), config.leak, self.NAME)
        self.options: LoaderOptions = loader_options(config.options)  # a bad option stops us before any work
        images, labels = draw_training_set(config.seed, self.options.samples)
        # Built before the fork, so the workers start with its pages shared, as a Dataset built in __init__ is.
        store: Store = ListStore(images, labels) if config.leak == "copy-on-read" else ArrayStore(images, labels)
        del images, labels  # the leaky run holds the dataset once, as lists only
        super().__init__(config)
        # The numpy variant cut the seed's 150 images into fixed batches; ours come from the workers each epoch.
        self._batches = []
        self._train_n = self.options.samples
        self._bounds = batch_bounds(self.options.samples, config.batch_size)
        self._build_nets({stop - start for start, stop in self._bounds} | {self._test.n})
        memoise = config.leak == "worker-cache"
        workers = self.options.workers
        self._loader = (
            WorkerPool(store, workers, memoise, self.options.timeout_s) if workers else InlineLoader(store, memoise)
        )

    @property
    def worker_pids(self) -> list[int]:
        """The data-loader workers' process ids (none with workers=0)."""
        return self._loader.pids

    def _epoch_batches(self, epoch: int) -> Iterator[Batch]:
        """The workers' batches for this epoch, in the numpy variant's order, each made a Batch here."""
        for images, labels in self._loader.epoch(epoch, self._bounds):
            yield Batch(images, labels)

    def flops_per_epoch(self) -> int:
        """Floating-point operations of one epoch over K training images (the seed's 150 at K = 150)."""
        sizes = [stop - start for start, stop in self._bounds]
        return epoch_flops(sizes, self._test.n, fc_only=self.config.fc_only)

    def close(self) -> None:
        """Stop the workers and wait for them (safe to call twice)."""
        self._loader.close()
