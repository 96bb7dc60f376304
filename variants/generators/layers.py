"""The seed's layers as generator stages: each one lazily maps a stream of per-sample traces.

A sample travels as a :class:`Trace`.  ``forward(params, stream)`` yields each
trace with its value replaced by the layer's output and pushes what backward
needs onto ``trace.caches``; ``backward(params, stream)`` pops it, replaces the
value (the delta) by the input delta and stores the sample's own parameter
gradients in ``trace.grads``.  Nothing ever holds a whole batch: one sample at a
time flows through the chained generators.

The per-sample maths is pure Python on flat lists in (channel, row, column)
order; gathers use ``operator.itemgetter`` with index tables built once per
layer, and dot products are ``sum(map(mul, a, b))``, which keeps the inner loops
in C.  Parameters arrive as flat canonical (C-order) lists, see
:mod:`variants.network`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter, mul
from typing import Any, Protocol

Vector = Sequence[float]
Params = Mapping[str, list[float]]


@dataclass(slots=True, weakref_slot=True)
class Trace:
    """One sample in the pipeline: its current value, the caches forward left for backward, its results."""

    value: Vector
    label: int = -1
    caches: list[Any] = field(default_factory=list)
    grads: dict[str, list[float]] = field(default_factory=dict)
    loss: float = 0.0
    probs: list[float] = field(default_factory=list)


class Layer(Protocol):
    """A stage of the pipeline: lazy forward and backward maps over trace streams."""

    def forward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """Yield each trace with its value replaced by this layer's output."""
        ...

    def backward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """Yield each trace with its delta replaced by the input delta, its gradients stored."""
        ...


def _gather(indices: list[int]) -> Callable[[Vector], tuple[float, ...]]:
    """A C-speed gather that always returns a tuple (``itemgetter`` of one index would not)."""
    if len(indices) < 2:
        raise ValueError("a gather needs at least two indices")
    return itemgetter(*indices)


def _rows(flat: list[float], width: int) -> list[list[float]]:
    """A flat C-order matrix as a list of rows."""
    return [flat[start : start + width] for start in range(0, len(flat), width)]


class Conv:
    """Valid cross-correlation, stride 1, one bias per kernel (the seed's convolution)."""

    def __init__(self, name: str, channels: int, size: int, kernels: int, ksize: int, input_delta: bool = True) -> None:
        self.weight, self.bias = f"{name}.weight", f"{name}.bias"
        self.kernels, self.input_delta = kernels, input_delta
        self.width = channels * ksize * ksize  # one kernel, flattened like the canonical weight
        out = size - ksize + 1
        self.area = out * out
        # Per output position, the input indices under the kernel in (c, i, j) order: the weight's order.
        self._patches = [
            _gather(
                [
                    c * size * size + (y + i) * size + x + j
                    for c in range(channels)
                    for i in range(ksize)
                    for j in range(ksize)
                ]
            )
            for y in range(out)
            for x in range(out)
        ]
        # Backward the seed's way: border the delta with ksize-1 zeros, correlate with the flipped kernels.
        # The bordered delta is one gather from the delta plus a trailing 0.0 that every border cell reads.
        padded = out + 2 * (ksize - 1)
        zero = kernels * self.area
        self._border = _gather(
            [
                k * self.area + (y - ksize + 1) * out + x - ksize + 1
                if ksize - 1 <= y < ksize - 1 + out and ksize - 1 <= x < ksize - 1 + out
                else zero
                for k in range(kernels)
                for y in range(padded)
                for x in range(padded)
            ]
        )
        self._back_patches = [
            _gather(
                [
                    k * padded * padded + (y + i) * padded + x + j
                    for k in range(kernels)
                    for i in range(ksize)
                    for j in range(ksize)
                ]
            )
            for y in range(size)
            for x in range(size)
        ]
        # For input channel c, the flipped kernels over all k in (k, i, j) order.
        self._flips = [
            _gather(
                [
                    k * self.width + c * ksize * ksize + (ksize - 1 - i) * ksize + ksize - 1 - j
                    for k in range(kernels)
                    for i in range(ksize)
                    for j in range(ksize)
                ]
            )
            for c in range(channels)
        ]

    def forward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """out[k, y, x] = b[k] + sum W[k, c, i, j] * in[c, y+i, x+j]."""
        kernels = list(zip(_rows(params[self.weight], self.width), params[self.bias]))
        for trace in stream:
            x = trace.value
            patches = [gather(x) for gather in self._patches]
            trace.caches.append(patches)
            trace.value = [b + sum(map(mul, w, p)) for w, b in kernels for p in patches]
            yield trace

    def backward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """dW = input (x) delta, db = sum of delta, input delta = bordered delta (*) flipped kernels."""
        weight = params[self.weight]
        flips = [flip(weight) for flip in self._flips]
        area = self.area
        for trace in stream:
            patches = trace.caches.pop()
            delta = trace.value
            per_kernel = [delta[k * area : (k + 1) * area] for k in range(self.kernels)]
            columns = list(zip(*patches))  # column p: input value under kernel entry p, per position
            trace.grads[self.weight] = [sum(map(mul, d, col)) for d in per_kernel for col in columns]
            trace.grads[self.bias] = [sum(d) for d in per_kernel]
            if self.input_delta:
                bordered = self._border([*delta, 0.0])
                windows = [gather(bordered) for gather in self._back_patches]
                trace.value = [sum(map(mul, f, w)) for f in flips for w in windows]
            else:
                trace.value = ()  # the first layer's input delta is never used
            yield trace


class ReLU:
    """x if x > 0 else 0; the derivative is 1 only where the pre-activation is > 0."""

    def forward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """Clip at zero, keeping the pre-activation for backward."""
        for trace in stream:
            x = trace.value
            trace.caches.append(x)
            trace.value = [v if v > 0.0 else 0.0 for v in x]
            yield trace

    def backward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """Pass the delta where the pre-activation was positive."""
        for trace in stream:
            x = trace.caches.pop()
            trace.value = [d if v > 0.0 else 0.0 for d, v in zip(trace.value, x)]
            yield trace


class MaxPool:
    """2x2 max-pool, stride 2; the first maximum of the window in row-major order wins."""

    def __init__(self, channels: int, size: int, pool: int = 2) -> None:
        self.inputs = channels * size * size
        out = size // pool
        self._windows = [
            [c * size * size + (pool * y + i) * size + pool * x + j for i in range(pool) for j in range(pool)]
            for c in range(channels)
            for y in range(out)
            for x in range(out)
        ]
        self._gathers = [(_gather(w), w) for w in self._windows]

    def forward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """Window maxima; the winners' input positions are kept for backward."""
        for trace in stream:
            x = trace.value
            out: list[float] = []
            winners: list[int] = []
            for gather, indices in self._gathers:
                window = gather(x)
                best = max(window)  # max and index both take the first of equal values
                out.append(best)
                winners.append(indices[window.index(best)])
            trace.caches.append(winners)
            trace.value = out
            yield trace

    def backward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """Each delta goes to its window's recorded winner; the rest of the input gets 0."""
        for trace in stream:
            winners = trace.caches.pop()
            delta = [0.0] * self.inputs
            for position, d in zip(winners, trace.value):
                delta[position] = d  # windows do not overlap, so assignment is enough
            trace.value = delta
            yield trace


class Flatten:
    """(channel, row, column) to a vector: our values are already flat in that order, so a copy."""

    def forward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """The same numbers as one vector."""
        for trace in stream:
            trace.value = list(trace.value)
            yield trace

    def backward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """The delta is already in the input's order."""
        for trace in stream:
            trace.value = list(trace.value)
            yield trace


class Dense:
    """Fully connected: h = W @ x + b with W of shape (outputs, inputs)."""

    def __init__(self, name: str, inputs: int) -> None:
        self.weight, self.bias = f"{name}.weight", f"{name}.bias"
        self.inputs = inputs

    def forward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """One dot product per output unit."""
        units = list(zip(_rows(params[self.weight], self.inputs), params[self.bias]))
        for trace in stream:
            x = trace.value
            trace.caches.append(x)
            trace.value = [b + sum(map(mul, w, x)) for w, b in units]
            yield trace

    def backward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """dW = delta (outer) x, db = delta, input delta = W^T @ delta."""
        columns = list(zip(*_rows(params[self.weight], self.inputs)))
        for trace in stream:
            x = trace.caches.pop()
            delta = trace.value
            trace.grads[self.weight] = [d * v for d in delta for v in x]
            trace.grads[self.bias] = list(delta)
            trace.value = [sum(map(mul, delta, col)) for col in columns]
            yield trace


class SoftmaxCrossEntropy:
    """Softmax (max subtracted first) with the per-sample loss -log p[label]; delta = p - onehot."""

    def forward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """Store the probabilities and the loss on each trace."""
        for trace in stream:
            z = trace.value
            top = max(z)
            exps = [math.exp(v - top) for v in z]
            total = sum(exps)
            trace.probs = [e / total for e in exps]
            if trace.label >= 0:
                trace.loss = -math.log(trace.probs[trace.label])
            yield trace

    def backward(self, params: Params, stream: Iterable[Trace]) -> Iterator[Trace]:
        """Start the backward pass: delta = softmax - onehot."""
        for trace in stream:
            delta = list(trace.probs)
            delta[trace.label] -= 1.0
            trace.value = delta
            yield trace
