"""The seed's layers as values, and forward / backward propagation walking the layer list by recursion.

Like the Haskell original, ``forward_layer`` returns ``[output, kept]`` where
``kept`` is the layer's input, except for max-pool, which keeps the window
positions of its maxima instead ("the pool layer tampers with its input").
``backward_layer`` returns ``(delta for the layer above, difference layer)``: a
layer of the same kind holding the gradients, or the layer itself when it has
no parameters.  Updating averages these per-sample differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from variants.lists.algebra import (
    Image,
    Kernels,
    Row,
    add_border,
    affine,
    channel_sums,
    convolve,
    depool_max,
    filter_gradients,
    flatten,
    flip_kernels,
    outer,
    pool_max,
    relu,
    relu_delta,
    transposed_product,
    unflatten,
)


@dataclass(frozen=True, eq=False)
class ConvLayer:
    """Convolution: kernels (out x in x s x s) and one bias per kernel."""

    kernels: Kernels
    biases: Row

    @cached_property
    def flipped(self) -> Kernels:
        """The seed's w', computed once per layer value and shared by every sample of a batch."""
        return flip_kernels(self.kernels)


@dataclass(frozen=True)
class ReluLayer:
    """ReLU activation."""


@dataclass(frozen=True)
class MaxPoolLayer:
    """Max-pool over size x size windows with stride size."""

    size: int


@dataclass(frozen=True)
class FlattenLayer:
    """Channels x rows x columns -> one row ``[[values]]``."""


@dataclass(frozen=True, eq=False)
class FullLayer:
    """Fully connected: weights (out x in) as rows, and biases."""

    weights: list[Row]
    biases: Row


@dataclass(frozen=True)
class SoftmaxLayer:
    """Softmax output; its delta (softmax - onehot) already includes the cross-entropy."""


Layer = ConvLayer | ReluLayer | MaxPoolLayer | FlattenLayer | FullLayer | SoftmaxLayer


def softmax(z: Row) -> Row:
    """exp(z - max z), normalised."""
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    return [v / total for v in e]


def forward_layer(layer: Layer, image: Image) -> list[Any]:
    """``[output, what backward needs]`` for one layer (the seed's forwardLayer)."""
    match layer:
        case ConvLayer(kernels, biases):
            return [convolve(kernels, biases, image), image]
        case ReluLayer():
            return [relu(image), image]
        case MaxPoolLayer(size):
            return list(pool_max(size, image))
        case FlattenLayer():
            return [flatten(image), image]
        case FullLayer(weights, biases):
            return [[[affine(weights, biases, image[0][0])]], image]
        case SoftmaxLayer():
            return [[[softmax(image[0][0])]], image]
    raise TypeError(f"not a layer: {layer!r}")


def backward_layer(layer: Layer, kept: Any, delta: Image, need_delta: bool = True) -> tuple[Image | None, Layer]:
    """``(delta for the layer above, difference layer)``; the delta is None when not needed."""
    match layer:
        case ConvLayer(kernels, _):
            s = len(kernels[0][0])
            conv_diff = ConvLayer(filter_gradients(kept, delta, s), channel_sums(delta))
            if not need_delta:
                return None, conv_diff
            # The seed's way, literally: forward-convolve the zero-bordered delta with w'.
            zero_biases = [0.0] * len(kernels[0])
            return convolve(layer.flipped, zero_biases, add_border(s - 1, delta)), conv_diff
        case ReluLayer():
            return relu_delta(kept, delta), layer
        case MaxPoolLayer(size):
            return depool_max(size, kept, delta), layer
        case FlattenLayer():
            return unflatten(kept, delta), layer
        case FullLayer(weights, _):
            d = delta[0][0]
            full_diff = FullLayer(outer(d, kept[0][0]), list(d))
            return ([[transposed_product(weights, d)]] if need_delta else None), full_diff
        case SoftmaxLayer():
            # softmax - onehot is handed in as the output delta (see output_delta).
            return delta, layer
    raise TypeError(f"not a layer: {layer!r}")


def forward_prop(layers: Sequence[Layer], images: list[Any]) -> list[Any]:
    """Walk the layers by recursion: ``[output, kept by the last layer, ..., kept by the first]``."""
    match layers:
        case []:
            return images
        case [layer, *rest]:
            return forward_prop(rest, forward_layer(layer, images[0]) + images[1:])
    raise TypeError("layers must be a sequence")


def backward_prop(
    reversed_layers: Sequence[Layer], kept: Sequence[Any], delta: Image
) -> tuple[Image | None, list[Layer]]:
    """Walk the layers from the output back by recursion; differences come out in forward order.

    The last layer walked passes no delta up (the first convolution's input delta is never used).
    """
    match reversed_layers:
        case []:
            return delta, []
        case [layer, *rest]:
            up, diff = backward_layer(layer, kept[0], delta, need_delta=bool(rest))
            if up is None:  # the last layer walked passes nothing up
                return None, [diff]
            top_delta, diffs = backward_prop(rest, kept[1:], up)
            return top_delta, [*diffs, diff]
    raise TypeError("layers must be a sequence")


def output_delta(probabilities: Row, label: int) -> Image:
    """softmax - onehot: the gradient of -log softmax[label] with respect to the softmax's input."""
    return [[[p - 1.0 if k == label else p for k, p in enumerate(probabilities)]]]


def cross_entropy(probabilities: Row, label: int) -> float:
    """-log of the probability of the correct class."""
    return -math.log(probabilities[label])
