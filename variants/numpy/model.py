"""The seed's CNN in NumPy with every buffer allocated once, and its ``history`` leak.

Construction builds everything an epoch touches: conv1's patch matrices for
every training batch and for the test set (the images never change), one
:class:`~variants.numpy.net.BatchNet` per batch size over one shared arena,
the flat parameter and gradient vectors, and the metrics history.  An epoch
then only writes into those buffers (``out=`` and in-place operations).

Leak ``history``: a history kept across epochs that holds per-epoch arrays, the
PyTorch FAQ's "accumulating history across your training loop": every epoch
appends copies of every batch's activations and deltas, for later inspection.
The default keeps only the three metric floats per epoch, in an array sized for
``config.epochs`` at construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

import numpy as np

from harness.interface import RunConfig
from harness.loops import check_leak
from variants.data import initial_parameters, make_dataset
from variants.flops import SeedFlops
from variants.numpy.memory import Arena, small_ufunc_buffers
from variants.numpy.net import Batch, BatchNet
from variants.numpy.params import FlatParameters

METRICS = ("loss", "accuracy", "correct_prob")
MAX_PREALLOCATED_EPOCHS = 1_000_000  # 24 MB of history


class BuffersCNN(SeedFlops):
    """The seed's CNN on preallocated NumPy buffers, im2col and pooling without per-epoch allocation."""

    DESCRIPTION: ClassVar[str] = "NumPy with every buffer allocated once: im2col GEMMs, fused pooling, in-place updates"
    LEAKS: ClassVar[Mapping[str, str]] = {
        "history": "a history across epochs that keeps copies of every epoch's activations and deltas",
    }

    NAME: ClassVar[str] = "numpy"  # as registered; error messages name it
    NET: ClassVar[type[BatchNet]] = BatchNet  # how a batch runs through the network

    def __init__(self, config: RunConfig) -> None:
        check_leak(type(self), config.leak, self.NAME)
        self.config = config
        self._fc_only = config.fc_only
        self._params = FlatParameters(initial_parameters(config.seed))
        data = make_dataset(config.seed)
        size = config.batch_size
        train_n = len(data.train_labels)
        self._batches = [
            Batch(data.train_images[start : start + size], data.train_labels[start : start + size])
            for start in range(0, train_n, size)
        ]
        self._test = Batch(data.test_images, data.test_labels)
        self._train_n = train_n
        self._build_nets({batch.n for batch in self._batches} | {self._test.n})
        # Sized for the run up front (no allocation per epoch), but not beyond what a run can reach:
        # --epochs 10**12 must not ask for 22 TiB at construction; past it the history doubles.
        self._metrics = np.zeros((min(config.epochs, MAX_PREALLOCATED_EPOCHS), len(METRICS)))
        self._epochs_done = 0
        self.snapshots: list[list[dict[str, np.ndarray]]] = []  # the leak's history; stays empty when fixed

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training batches, then the test metrics; returns plain floats."""
        config = self.config
        leaky = config.leak == "history"
        snapshot: list[dict[str, np.ndarray]] = []
        loss = 0.0
        with small_ufunc_buffers():
            for batch in self._epoch_batches(epoch):
                net = self._nets[batch.n]
                loss += net.forward(batch)
                net.backward(batch, conv=not self._fc_only)
                self._update(config.learning_rate)
                if leaky:
                    snapshot.append({name: array.copy() for name, array in net.buffers().items()})
            net = self._nets[self._test.n]
            net.forward(self._test, loss=False)
            targets = self._test.targets
            accuracy = net.loss.correct(targets) / self._test.n
            correct_prob = float(net.loss.picked.sum()) / self._test.n
        if leaky:
            self.snapshots.append(snapshot)
        values = (loss / self._train_n, accuracy, correct_prob)
        self._record(values)
        return dict(zip(METRICS, values, strict=True))

    def _build_nets(self, sizes: Iterable[int]) -> None:
        """One net per batch size over one new arena (the loader variant rebuilds them for its batch sizes)."""
        self._arena = Arena()
        # Largest first: the arena allocates for the first plan, smaller ones view its start.
        self._nets = {n: self.NET(self._params, n, self._arena) for n in sorted(set(sizes), reverse=True)}

    def _epoch_batches(self, epoch: int) -> Iterable[Batch]:
        """This epoch's training batches in order: the same fixed ones every epoch (the loader's come from workers)."""
        return self._batches

    def _update(self, learning_rate: float) -> None:
        """One gradient-descent step of the learning parameters (the numba variant compiles its own)."""
        self._params.step(learning_rate, self._fc_only)

    def _record(self, values: tuple[float, float, float]) -> None:
        """Store an epoch's metrics in the preallocated history, doubling it only past its size."""
        if self._epochs_done == len(self._metrics):
            self._metrics = np.concatenate([self._metrics, np.zeros_like(self._metrics)])
        self._metrics[self._epochs_done] = values
        self._epochs_done += 1

    @property
    def history(self) -> np.ndarray:
        """Metrics so far, one row per epoch, columns as in METRICS (a copy)."""
        return self._metrics[: self._epochs_done].copy()

    def get_parameters(self) -> dict[str, np.ndarray]:
        """A copy of the current parameters, canonical names and shapes."""
        return self._params.canonical()

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        """Replace the current parameters with canonical ones."""
        self._params.load(params)

    def loss_and_gradients(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Mean loss over the samples and its gradient for all eight parameters; no update."""
        batch = Batch(images, labels)
        net = self.NET(self._params, batch.n, Arena())
        with small_ufunc_buffers():
            loss = net.forward(batch)
            net.backward(batch, conv=True)
        return loss / batch.n, self._params.canonical(gradients=True)
