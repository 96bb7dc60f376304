"""The seed's CNN as lazy generator pipelines in pure Python, with the ``thunks`` leak.

Every batch is one chain of generators (see :mod:`variants.generators.layers`):
samples -> conv1 -> relu -> pool -> conv2 -> relu -> pool -> flatten -> fc1 ->
relu -> fc2 -> softmax+CE -> and back down through the backward stages.  The
final consumer adds each sample's gradients to running sums as the stream is
pulled, so no whole-batch array exists.

Parameters live in a :class:`~variants.generators.lazy.Thunk`.  The fixed loop
forces each update at once and lets it drop its inputs.  With ``leak="thunks"``
the update is left lazy (forced when the parameters are next read) and keeps
the previous parameters' thunk and the batch's per-sample results after it is
forced, so a chain through every past epoch stays reachable: the seed's lazy
Haskell loop.  Both compute the same numbers in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import add
from typing import ClassVar

import numpy as np

from harness.errors import UsageError
from harness.interface import RunConfig
from harness.loops import check_leak
from variants.data import initial_parameters, make_dataset
from variants.flops import SeedFlops
from variants.generators.layers import (
    Conv,
    Dense,
    Flatten,
    Layer,
    MaxPool,
    Params,
    ReLU,
    SoftmaxCrossEntropy,
    Trace,
)
from variants.generators.lazy import Thunk, chain_length
from variants.network import (
    CLASSES,
    CONV1_KERNELS,
    CONV1_SIZE,
    CONV2_KERNELS,
    CONV2_SIZE,
    FLAT,
    HIDDEN,
    IMAGE_SIZE,
    PARAMETER_SHAPES,
    learning_parameters,
)

Gradients = dict[str, list[float]]

CONV1_OUT = IMAGE_SIZE - CONV1_SIZE + 1  # 10
POOL1_OUT = CONV1_OUT // 2  # 5
CONV2_OUT = POOL1_OUT - CONV2_SIZE + 1  # 4

LAYERS: tuple[Layer, ...] = (
    Conv("conv1", 1, IMAGE_SIZE, CONV1_KERNELS, CONV1_SIZE, input_delta=False),
    ReLU(),
    MaxPool(CONV1_KERNELS, CONV1_OUT),
    Conv("conv2", CONV1_KERNELS, POOL1_OUT, CONV2_KERNELS, CONV2_SIZE),
    ReLU(),
    MaxPool(CONV2_KERNELS, CONV2_OUT),
    Flatten(),
    Dense("fc1", FLAT),
    ReLU(),
    Dense("fc2", HIDDEN),
)
FC_START = 7  # LAYERS[FC_START:] are fc1, relu, fc2: all that backward needs when only they learn
OUTPUT = SoftmaxCrossEntropy()


def samples(images: Sequence[list[float]], labels: Sequence[int]) -> Iterator[Trace]:
    """The source of a pipeline: one fresh trace per sample, in dataset order."""
    for image, label in zip(images, labels):
        yield Trace(image, label)


def forward(params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
    """The lazy forward pipeline up to the softmax probabilities and per-sample losses."""
    for layer in LAYERS:
        stream = layer.forward(params, stream)
    return OUTPUT.forward(params, stream)


def training(params: Params, stream: Iterable[Trace], losses: list[float], conv: bool) -> Iterator[Trace]:
    """Forward, record each loss as it passes, then backward (through the conv layers only if ``conv``)."""
    stream = _record_losses(forward(params, stream), losses)
    stream = OUTPUT.backward(params, stream)
    for layer in reversed(LAYERS if conv else LAYERS[FC_START:]):
        stream = layer.backward(params, stream)
    return stream


def _record_losses(stream: Iterable[Trace], losses: list[float]) -> Iterator[Trace]:
    """Pass traces on unchanged, noting each sample's loss before its batch's update."""
    for trace in stream:
        losses.append(trace.loss)
        yield trace


def accumulate(stream: Iterable[Trace]) -> tuple[Gradients, int]:
    """Sum the per-sample gradients in stream order while pulling the stream; also count the samples."""
    sums: Gradients = {}
    count = 0
    for trace in stream:
        count += 1
        for name, grad in trace.grads.items():
            total = sums.get(name)
            sums[name] = list(grad) if total is None else list(map(add, total, grad))
    return sums, count


def step(params: Params, sums: Gradients, count: int, rate: float, names: Iterable[str]) -> Params:
    """Plain gradient descent W <- W - rate * mean for the named parameters; others are shared unchanged."""
    new = dict(params)
    for name in names:
        new[name] = [w - rate * (s / count) for w, s in zip(params[name], sums[name])]
    return new


def _update(previous: Thunk[Params], results: Iterable[Trace], rate: float, names: Iterable[str]) -> Params:
    """The parameters after one batch: previous minus rate times the mean of the per-sample gradients."""
    return step(previous.force(), *accumulate(results), rate, names)


def to_lists(params: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
    """Canonical arrays to flat C-order Python float lists, checking names and shapes."""
    if set(params) != set(PARAMETER_SHAPES):
        raise UsageError(f"parameters must be exactly {', '.join(PARAMETER_SHAPES)}; got {', '.join(sorted(params))}")
    lists = {}
    for name, shape in PARAMETER_SHAPES.items():
        array = np.asarray(params[name], dtype=np.float64)
        if array.shape != shape:
            raise UsageError(f"parameter {name} must have shape {shape}, got {array.shape}")
        lists[name] = array.ravel().tolist()
    return lists


def images_to_lists(images: np.ndarray) -> list[list[float]]:
    """(N, 1, 12, 12) images to one flat Python list per sample."""
    array = np.asarray(images, dtype=np.float64)
    if array.ndim != 4 or array.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise UsageError(f"images must have shape (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}), got {array.shape}")
    return [image.ravel().tolist() for image in array]


class GeneratorsCNN(SeedFlops):
    """The seed's CNN as generator pipelines over pure-Python per-sample lists."""

    DESCRIPTION: ClassVar[str] = "seed CNN as lazy generator pipelines over pure-Python lists"
    LEAKS: ClassVar[Mapping[str, str]] = {
        "thunks": "each update is a lazy memoised thunk that keeps the previous parameters' thunk "
        "and its batch's per-sample gradient records, so every past epoch stays reachable",
    }

    def __init__(self, config: RunConfig) -> None:
        check_leak(type(self), config.leak, "generators")
        self.config = config
        self._keep_thunks = config.leak == "thunks"
        self._names = learning_parameters(config.fc_only)
        data = make_dataset(config.seed)
        self._train = (images_to_lists(data.train_images), [int(y) for y in data.train_labels])
        self._test = (images_to_lists(data.test_images), [int(y) for y in data.test_labels])
        self._params: Thunk[Params] = Thunk.ready(to_lists(initial_parameters(config.seed)))

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training set in batches, then the test metrics."""
        images, labels = self._train
        size = self.config.batch_size
        losses: list[float] = []
        for start in range(0, len(images), size):
            self._train_batch(images[start : start + size], labels[start : start + size], losses)
        accuracy, correct_prob = self._evaluate()
        return {"loss": sum(losses) / len(losses), "accuracy": accuracy, "correct_prob": correct_prob}

    def _train_batch(self, images: Sequence[list[float]], labels: Sequence[int], losses: list[float]) -> None:
        """Build this batch's update as a thunk over the previous parameters' thunk."""
        previous = self._params
        rate, names = self.config.learning_rate, self._names
        stream = training(previous.force(), samples(images, labels), losses, conv=not self.config.fc_only)
        if self._keep_thunks:
            # Leak: the stream's results become the lazy update's input, and the update never lets go of them.
            results = list(stream)
            update = Thunk(_update, previous, results, rate, names, keep_inputs=True)
        else:
            update = Thunk(_update, previous, stream, rate, names)
            update.force()  # strict: the stream is consumed now and the thunk drops what it was built from
        self._params = update

    def _evaluate(self) -> tuple[float, float]:
        """Accuracy (argmax, ties to the lowest class) and mean correct-class probability on the test set."""
        images, labels = self._test
        correct, prob_sum = 0, 0.0
        for trace in forward(self._params.force(), samples(images, labels)):
            probs = trace.probs
            correct += probs.index(max(probs)) == trace.label
            prob_sum += probs[trace.label]
        return correct / len(images), prob_sum / len(images)

    def get_parameters(self) -> dict[str, np.ndarray]:
        """A copy of the current parameters in canonical names and shapes."""
        params = self._params.force()
        return {name: np.array(params[name]).reshape(shape) for name, shape in PARAMETER_SHAPES.items()}

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        """Replace the current parameters with canonical ones (this also starts a new thunk chain)."""
        self._params = Thunk.ready(to_lists(params))

    def loss_and_gradients(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Mean loss over the samples and its mean gradient for all eight parameters, without updating."""
        flat = images_to_lists(images)
        targets = [int(y) for y in np.asarray(labels).ravel()]
        if not flat or len(targets) != len(flat):
            counts = f"{len(flat)} images, {len(targets)} labels"
            raise UsageError(f"need one label per image and at least one image; got {counts}")
        if any(not 0 <= y < CLASSES for y in targets):
            raise UsageError(f"labels must be class numbers 0 to {CLASSES - 1}; got {sorted(set(targets))}")
        losses: list[float] = []
        sums, count = accumulate(training(self._params.force(), samples(flat, targets), losses, conv=True))
        grads = {
            name: (np.array(sums[name], dtype=np.float64) / count).reshape(shape)
            for name, shape in PARAMETER_SHAPES.items()
        }
        return sum(losses) / count, grads

    def close(self) -> None:
        """Let go of the parameter chain so a leaky run's memory can be returned."""
        self._params = Thunk.ready(self._params.force())

    def chain_length(self) -> int:
        """How many parameter thunks are reachable from the current one (1 when no past update is kept)."""
        return chain_length(self._params)
