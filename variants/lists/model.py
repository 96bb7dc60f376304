"""The seed's design ported to Python: nested lists, layers walked by recursion, and its epoch recursion leak.

Each sample is propagated forward and backward through the list of layers
(:mod:`variants.lists.layers`); each gives a list of difference layers, and a
batch updates the layers with their average (:mod:`variants.lists.params`).

Leak ``recursion``: the seed's training loop before its fix was a non-tail
recursion over the epochs.  Here each epoch is one level of a recursive
generator whose frame keeps that epoch's per-sample differences until the whole
recursion returns, which Python (no tail calls) never does early.  The default
is the seed's later strict fold: a plain loop that drops each batch's differences.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType
from typing import ClassVar

import numpy as np

from harness.errors import UsageError
from harness.interface import RunConfig
from harness.loops import check_leak
from variants.data import initial_parameters, make_dataset
from variants.flops import SeedFlops
from variants.lists.algebra import Image
from variants.lists.layers import (
    FlattenLayer,
    Layer,
    backward_prop,
    cross_entropy,
    forward_prop,
    output_delta,
)
from variants.lists.params import (
    build_network,
    mean_differences,
    to_canonical,
    update_layers,
)
from variants.network import CLASSES, IMAGE_SIZE

Sample = tuple[Image, int]
Differences = list[Layer]  # one sample's difference layers, for the layers that learn

# Frames the training work needs below one epoch level (the layer recursions and helpers).
FRAME_MARGIN = 100
# Every level of a resumed generator chain also uses C stack in CPython 3.11; far
# deeper than this the process crashes (measured: 15 000 levels ran, 60 000 segfaulted).
MAX_RECURSIVE_EPOCHS = 5000


def sample_differences(
    layers: Sequence[Layer], walked: Sequence[Layer], image: Image, label: int
) -> tuple[float, Differences]:
    """One sample's loss and difference layers; ``walked`` are the learning layers, output first."""
    images = forward_prop(layers, [image])
    probabilities = images[0][0][0]
    _, diffs = backward_prop(walked, images[1:], output_delta(probabilities, label))
    return cross_entropy(probabilities, label), diffs


def predict(layers: Sequence[Layer], image: Image) -> list[float]:
    """The softmax output for one image."""
    return forward_prop(layers, [image])[0][0][0]


def _stack_depth() -> int:
    """How many Python frames are below the caller."""
    frame: FrameType | None = sys._getframe(1)
    depth = 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


class ListsCNN(SeedFlops):
    """The seed's CNN on nested Python lists, with recursive propagation (CanonicalCNN)."""

    DESCRIPTION: ClassVar[str] = "the seed's Haskell design in pure Python: nested lists, layers walked by recursion"
    LEAKS: ClassVar[Mapping[str, str]] = {
        "recursion": "the seed's pre-fix loop: one recursion level per epoch keeps that epoch's per-sample differences",
    }

    def __init__(self, config: RunConfig) -> None:
        check_leak(type(self), config.leak, "lists")
        self.config = config
        data = make_dataset(config.seed)
        train = list(zip(data.train_images.tolist(), data.train_labels.tolist()))
        size = config.batch_size
        self._batches: list[list[Sample]] = [train[i : i + size] for i in range(0, len(train), size)]
        self._train_count = len(train)
        self._test: list[Sample] = list(zip(data.test_images.tolist(), data.test_labels.tolist()))
        self._layers: list[Layer] = build_network(initial_parameters(config.seed))
        # fc_only walks back only through the layers after the flatten (fc2 ... fc1).
        flat_at = next(i for i, layer in enumerate(self._layers) if isinstance(layer, FlattenLayer))
        self._walk = len(self._layers) - flat_at - 1 if config.fc_only else len(self._layers)
        self._epochs: Iterator[dict[str, float]] | None = None
        if config.leak == "recursion":
            self._make_room_for(config.epochs)

    # -- training -------------------------------------------------------------

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch over all batches; returns loss, accuracy and correct_prob."""
        if self.config.leak == "recursion":
            if self._epochs is None:
                self._epochs = self._epochs_from(epoch)
            try:
                return next(self._epochs)
            except RecursionError as exc:
                raise RuntimeError(
                    f"leak 'recursion' ran out of Python recursion depth at epoch {epoch}"
                    f" (limit {sys.getrecursionlimit()})"
                ) from exc
        batch_losses = []
        for batch in self._batches:
            loss, _ = self._learn_batch(batch)  # the batch's differences are dropped here
            batch_losses.append(loss)
        return self._metrics(batch_losses)

    def _epochs_from(self, epoch: int) -> Iterator[dict[str, float]]:
        """The leak: one recursion level per epoch, each keeping its epoch's per-sample differences."""
        # The next line is the leak: this frame keeps every (loss, differences) until the recursion returns.
        outcomes = [self._learn_batch(batch) for batch in self._batches]  # LEAK

        yield self._metrics([loss for loss, _ in outcomes])
        yield from self._epochs_from(epoch + 1)

    def _learn_batch(self, batch: Sequence[Sample]) -> tuple[float, list[Differences]]:
        """Update the layers with the batch's mean difference; returns the summed loss and the differences."""
        layers = self._layers
        walked = layers[::-1][: self._walk]
        losses = []
        per_sample = []
        for image, label in batch:
            loss, diffs = sample_differences(layers, walked, image, label)
            losses.append(loss)
            per_sample.append(diffs)
        self._layers = update_layers(layers, per_sample, self.config.learning_rate)
        return sum(losses), per_sample

    def _metrics(self, batch_losses: Sequence[float]) -> dict[str, float]:
        """The epoch's mean training loss and, after its updates, the test accuracy and correct-class probability."""
        correct = 0
        correct_prob = 0.0
        for image, label in self._test:
            p = predict(self._layers, image)
            correct += p.index(max(p)) == label  # first maximum: ties go to the lowest class
            correct_prob += p[label]
        n = len(self._test)
        return {
            "loss": float(sum(batch_losses) / self._train_count),
            "accuracy": correct / n,
            "correct_prob": correct_prob / n,
        }

    def _make_room_for(self, epochs: int) -> None:
        """Make sure the epoch recursion can go ``epochs`` deep, or refuse clearly."""
        if epochs > MAX_RECURSIVE_EPOCHS:
            raise UsageError(
                "leak 'recursion' recurses once per epoch and supports at most"
                f" {MAX_RECURSIVE_EPOCHS} epochs, got {epochs}"
            )
        needed = _stack_depth() + epochs + FRAME_MARGIN
        if needed > sys.getrecursionlimit():
            # Python counts each generator level against the recursion limit; the default
            # 1000 would stop the seed's 500 epochs only when called from deep inside a harness.
            sys.setrecursionlimit(needed)

    def close(self) -> None:
        """Let go of the epoch recursion (and everything its levels keep)."""
        self._epochs = None

    # -- canonical form (CanonicalCNN) ---------------------------------------

    def get_parameters(self) -> dict[str, np.ndarray]:
        """A copy of the current parameters, canonical names and shapes, float64."""
        return to_canonical(self._layers)

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        """Replace the current parameters with canonical ones."""
        self._layers = build_network(params)

    def loss_and_gradients(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy over the samples and its gradient for all 8 parameters; no update."""
        images, labels = np.asarray(images), np.asarray(labels)
        shape = (1, IMAGE_SIZE, IMAGE_SIZE)
        if images.ndim != 4 or images.shape[1:] != shape or images.shape[0] < 1:
            raise UsageError(
                f"images must have shape (N, {', '.join(map(str, shape))}) with N >= 1, got {images.shape}"
            )
        if labels.shape != (images.shape[0],) or not np.all((labels >= 0) & (labels < CLASSES)):
            raise UsageError(f"labels must be {images.shape[0]} class indices in 0..{CLASSES - 1}, got {labels!r}")
        layers = self._layers
        walked = layers[::-1]  # every layer, whatever fc_only says
        outcomes = [
            sample_differences(layers, walked, image, int(label))
            for image, label in zip(images.astype(np.float64).tolist(), labels.tolist())
        ]
        loss = sum(loss for loss, _ in outcomes) / len(outcomes)
        return float(loss), to_canonical(mean_differences([diffs for _, diffs in outcomes]))
