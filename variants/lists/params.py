"""The seed's 11-layer network as a list of layer values: building it, averaging differences, updating.

NumPy appears only here, at the border: canonical arrays become nested lists
with ``.tolist()`` when the network is built and come back in ``to_canonical``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from harness.errors import UsageError
from variants.lists.layers import (
    ConvLayer,
    FlattenLayer,
    FullLayer,
    Layer,
    MaxPoolLayer,
    ReluLayer,
    SoftmaxLayer,
)
from variants.network import PARAMETER_SHAPES, POOL

# Canonical prefixes of the parametric layers, in the order they appear in the network.
PARAMETRIC = ("conv1", "conv2", "fc1", "fc2")


def build_network(params: Mapping[str, np.ndarray]) -> list[Layer]:
    """The seed's layers 1-11 holding the given canonical parameters."""
    check_parameters(params)

    def weights(name: str) -> Any:
        return np.asarray(params[f"{name}.weight"], dtype=np.float64).tolist()

    def biases(name: str) -> list[float]:
        return np.asarray(params[f"{name}.bias"], dtype=np.float64).tolist()

    return [
        ConvLayer(weights("conv1"), biases("conv1")),
        ReluLayer(),
        MaxPoolLayer(POOL),
        ConvLayer(weights("conv2"), biases("conv2")),
        ReluLayer(),
        MaxPoolLayer(POOL),
        FlattenLayer(),
        FullLayer(weights("fc1"), biases("fc1")),
        ReluLayer(),
        FullLayer(weights("fc2"), biases("fc2")),
        SoftmaxLayer(),
    ]


def check_parameters(params: Mapping[str, Any]) -> None:
    """Refuse a parameter set whose names or shapes are not the canonical ones."""
    if set(params) != set(PARAMETER_SHAPES):
        raise UsageError(f"parameters must be exactly {', '.join(PARAMETER_SHAPES)}; got {', '.join(sorted(params))}")
    for name, shape in PARAMETER_SHAPES.items():
        if np.shape(params[name]) != shape:
            raise UsageError(f"parameter {name} must have shape {shape}, got {np.shape(params[name])}")


def to_canonical(layers: Sequence[Layer]) -> dict[str, np.ndarray]:
    """Canonical float64 arrays from the parametric layers (or difference layers) of a full network."""
    parametric = [layer for layer in layers if isinstance(layer, (ConvLayer, FullLayer))]
    out: dict[str, np.ndarray] = {}
    for prefix, layer in zip(PARAMETRIC, parametric, strict=True):
        weight = layer.kernels if isinstance(layer, ConvLayer) else layer.weights
        out[f"{prefix}.weight"] = np.array(weight, dtype=np.float64)
        out[f"{prefix}.bias"] = np.array(layer.biases, dtype=np.float64)
    return out


def _mean(trees: Sequence[Any], n: int) -> Any:
    """Element-wise mean of equally nested lists, summing in sample order."""
    if isinstance(trees[0][0], list):
        return [_mean(group, n) for group in zip(*trees)]
    return [sum(column) / n for column in zip(*trees)]


def _step(values: Any, grads: Any, lr: float) -> Any:
    """values - lr * grads, element-wise on equally nested lists."""
    if isinstance(values[0], list):
        return [_step(v, g, lr) for v, g in zip(values, grads)]
    return [v - lr * g for v, g in zip(values, grads)]


def mean_difference(diffs: Sequence[Layer]) -> Layer:
    """The average of one layer's per-sample differences (a parameterless layer is its own difference)."""
    first = diffs[0]
    n = len(diffs)
    # One layer's differences are all of that layer's kind.
    if isinstance(first, ConvLayer):
        convs = cast(Sequence[ConvLayer], diffs)
        return ConvLayer(_mean([d.kernels for d in convs], n), _mean([d.biases for d in convs], n))
    if isinstance(first, FullLayer):
        fulls = cast(Sequence[FullLayer], diffs)
        return FullLayer(_mean([d.weights for d in fulls], n), _mean([d.biases for d in fulls], n))
    return first


def mean_differences(per_sample: Sequence[Sequence[Layer]]) -> list[Layer]:
    """Per layer, the average over samples of the per-sample differences (the seed's strip + vsum + scale)."""
    return [mean_difference(diffs) for diffs in zip(*per_sample)]


def update_layer(layer: Layer, mean: Layer, lr: float) -> Layer:
    """W <- W - lr * mean difference; parameterless layers stay as they are."""
    if isinstance(layer, ConvLayer) and isinstance(mean, ConvLayer):
        return ConvLayer(_step(layer.kernels, mean.kernels, lr), _step(layer.biases, mean.biases, lr))
    if isinstance(layer, FullLayer) and isinstance(mean, FullLayer):
        return FullLayer(_step(layer.weights, mean.weights, lr), _step(layer.biases, mean.biases, lr))
    return layer


def update_layers(layers: Sequence[Layer], per_sample: Sequence[Sequence[Layer]], lr: float) -> list[Layer]:
    """New layers after one batch; the differences cover the last ``len(per_sample[0])`` layers."""
    means = mean_differences(per_sample)
    frozen = len(layers) - len(means)
    return list(layers[:frozen]) + [update_layer(layer, mean, lr) for layer, mean in zip(layers[frozen:], means)]
