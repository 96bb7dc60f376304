"""The numpy variant's parameters: one flat vector of bias-augmented matrices, and its gradient.

Each layer's weight is stored as a matrix (K, fan_in + 1) whose last column is
the bias, so that a forward pass is one product with inputs that end in a row
of ones and a weight gradient is one product too.  All matrices live in one
flat vector, conv layers first, so a gradient step is two vector operations and
fc_only's step touches one contiguous tail.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from harness.errors import UsageError
from variants.network import PARAMETER_SHAPES

# Layer -> (rows, columns) of its augmented matrix, in storage order.
MATRIX_SHAPES: dict[str, tuple[int, int]] = {
    layer: (PARAMETER_SHAPES[f"{layer}.weight"][0], math.prod(PARAMETER_SHAPES[f"{layer}.weight"][1:]) + 1)
    for layer in ("conv1", "conv2", "fc1", "fc2")
}
FC_LAYERS = ("fc1", "fc2")


def _offsets() -> dict[str, tuple[int, int]]:
    """Layer -> (start, stop) in the flat vector."""
    offsets, start = {}, 0
    for layer, (rows, columns) in MATRIX_SHAPES.items():
        offsets[layer] = (start, start + rows * columns)
        start += rows * columns
    return offsets


OFFSETS = _offsets()
SIZE = max(stop for _, stop in OFFSETS.values())
FC_START = min(OFFSETS[layer][0] for layer in FC_LAYERS)


class FlatParameters:
    """Parameter and gradient vectors with per-layer matrix views and canonical conversion."""

    def __init__(self, params: Mapping[str, np.ndarray]) -> None:
        """Start from canonical ``params`` (all eight names of variants.network)."""
        self.values = np.zeros(SIZE)
        self.grads = np.zeros(SIZE)
        step = np.zeros(SIZE)
        # The views each mode updates, made once so that a step creates no objects.
        self._learning = {
            fc_only: (self.values[start:], self.grads[start:], step[start:])
            for fc_only, start in ((False, 0), (True, FC_START))
        }
        self.load(params)

    def matrix(self, layer: str) -> np.ndarray:
        """The layer's augmented weight (K, fan_in + 1), a view: updates show through."""
        start, stop = OFFSETS[layer]
        return self.values[start:stop].reshape(MATRIX_SHAPES[layer])

    def grad_matrix(self, layer: str) -> np.ndarray:
        """The gradient of :meth:`matrix`, a view."""
        start, stop = OFFSETS[layer]
        return self.grads[start:stop].reshape(MATRIX_SHAPES[layer])

    def load(self, params: Mapping[str, np.ndarray]) -> None:
        """Copy canonical parameters in; every name must be present with its canonical shape."""
        missing = set(PARAMETER_SHAPES) - set(params)
        if missing:
            expected = ", ".join(PARAMETER_SHAPES)
            raise UsageError(f"missing parameters: {', '.join(sorted(missing))}; expected {expected}")
        for name, shape in PARAMETER_SHAPES.items():
            value = np.asarray(params[name], dtype=np.float64)
            if value.shape != shape:
                raise UsageError(f"parameter {name} has shape {value.shape}, expected {shape}")
        for layer in MATRIX_SHAPES:
            matrix = self.matrix(layer)
            matrix[:, :-1] = np.asarray(params[f"{layer}.weight"], dtype=np.float64).reshape(matrix.shape[0], -1)
            matrix[:, -1] = np.asarray(params[f"{layer}.bias"], dtype=np.float64)

    def canonical(self, gradients: bool = False) -> dict[str, np.ndarray]:
        """New canonical arrays of the values (or of the gradients)."""
        out: dict[str, np.ndarray] = {}
        for layer in MATRIX_SHAPES:
            matrix = self.grad_matrix(layer) if gradients else self.matrix(layer)
            out[f"{layer}.weight"] = matrix[:, :-1].reshape(PARAMETER_SHAPES[f"{layer}.weight"]).copy()
            out[f"{layer}.bias"] = matrix[:, -1].copy()
        return out

    def learning(self, fc_only: bool) -> tuple[np.ndarray, np.ndarray]:
        """Views (values, grads) of the parameters a step updates: all of them, or the fc layers'."""
        values, grads, _ = self._learning[fc_only]
        return values, grads

    def step(self, learning_rate: float, fc_only: bool) -> None:
        """W <- W - learning_rate * grad for the learning parameters, in place."""
        values, grads, step = self._learning[fc_only]
        np.multiply(grads, learning_rate, out=step)
        np.subtract(values, step, out=values)
