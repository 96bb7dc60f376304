"""The seed's network for one batch size, wired once over preallocated buffers.

A :class:`Batch` holds what never changes for a batch of fixed images: conv1's
patch matrix (so conv1's im2col runs once per batch at construction, not every
epoch) and the targets.  A :class:`BatchNet` connects the layers of
:mod:`variants.numpy.conv` and :mod:`variants.numpy.layers` for ``n`` samples; nets of several sizes share
one :class:`~variants.numpy.memory.Arena`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from variants.network import (
    CLASSES,
    CONV1_KERNELS,
    CONV1_SIZE,
    CONV2_KERNELS,
    CONV2_SIZE,
    FLAT,
    HIDDEN,
    IMAGE_SIZE,
    POOL,
)
from variants.numpy.conv import Conv, ConvOnBuffer, patch_columns
from variants.numpy.layers import Dense, Pooling, PoolRelu, Relu, SoftmaxCrossEntropy, Targets
from variants.numpy.memory import Arena
from variants.numpy.params import FlatParameters

POOLED1 = (IMAGE_SIZE - CONV1_SIZE + 1) // POOL  # 5
POOLED2 = (POOLED1 - CONV2_SIZE + 1) // POOL  # 2


class Batch:
    """Fixed inputs of one batch: conv1's patch matrix (with its transpose view) and targets."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        """``images`` (n, 1, 12, 12), ``labels`` (n,)."""
        self.n = len(labels)
        self.cols = patch_columns(np.asarray(images, dtype=np.float64), CONV1_SIZE)
        self.cols_t = self.cols.transpose(0, 2, 1)
        self.targets = Targets(labels, CLASSES)


class BatchNet:
    """Forward and backward passes of the whole network for batches of ``n`` samples."""

    # The two layers with element-wise work beyond a product; the numba variant swaps in compiled ones.
    POOLING: ClassVar[Callable[..., Pooling]] = PoolRelu
    CONV_ON_BUFFER: ClassVar[type[ConvOnBuffer]] = ConvOnBuffer

    def __init__(self, params: FlatParameters, n: int, arena: Arena) -> None:
        """Views of ``arena`` for ``n`` samples; weights and gradients are views of ``params``."""
        self.n = n
        conv1_in = (1, IMAGE_SIZE, IMAGE_SIZE)
        self.conv1 = Conv(params.matrix("conv1"), params.grad_matrix("conv1"), conv1_in, CONV1_SIZE, n, arena, "conv1")
        pooled1 = arena.array("pool1.out", (CONV1_KERNELS, POOLED1, POOLED1, n))
        # Each pool's window gradient overwrites its convolution's output (no longer needed by then).
        pooled1_flat = pooled1.reshape(CONV1_KERNELS, -1)
        self.pool1 = self.POOLING(self.conv1.out, pooled1_flat, arena, "pool1", windows_grad=self.conv1.out)
        self.conv2 = self.CONV_ON_BUFFER(
            params.matrix("conv2"), params.grad_matrix("conv2"), pooled1, CONV2_SIZE, arena, "conv2"
        )
        # Pooled conv2 output (20, 2, 2, n) is already fc1's input (80, n) in (channel, row, column) order.
        fc1_in = arena.array("fc1.in", (FLAT + 1, n))
        pooled2_flat = fc1_in[:FLAT].reshape(CONV2_KERNELS, -1)
        self.pool2 = self.POOLING(self.conv2.out, pooled2_flat, arena, "pool2", windows_grad=self.conv2.out)
        fc2_in = arena.array("fc2.in", (HIDDEN + 1, n))
        self.fc1 = Dense(params.matrix("fc1"), params.grad_matrix("fc1"), fc1_in, fc2_in[:HIDDEN], arena, "fc1")
        self.relu = Relu(fc2_in[:HIDDEN], arena, "relu")
        logits = arena.array("logits", (CLASSES, n))
        self.fc2 = Dense(params.matrix("fc2"), params.grad_matrix("fc2"), fc2_in, logits, arena, "fc2")
        self.loss = SoftmaxCrossEntropy(logits, arena, "softmax")
        self._pool2_grad = self.fc1.input_grad.reshape(CONV2_KERNELS, -1)
        self._pool1_grad = self.conv2.input_grad.reshape(CONV1_KERNELS, -1)

    def forward(self, batch: Batch, loss: bool = True) -> float:
        """Run the batch forward; returns the sum of its per-sample losses (0.0 unless ``loss``)."""
        self.conv1.use_columns(batch.cols, batch.cols_t)
        self.conv1.forward()
        self.pool1.forward()
        self.conv2.forward()
        self.pool2.forward()
        self.fc1.forward()
        self.relu.forward()
        self.fc2.forward()
        if not loss:  # probabilities only, for accuracy and correct_prob
            self.loss.probabilities_and_picked(batch.targets)
            return 0.0
        return self.loss.forward(batch.targets)

    def backward(self, batch: Batch, conv: bool) -> None:
        """Mean gradients over the batch into the parameters' gradient; conv layers only if ``conv``."""
        dz = self.loss.backward(batch.targets)
        self.fc2.backward(dz, input_grad=True)
        self.relu.backward(self.fc2.input_grad)
        self.fc1.backward(self.fc2.input_grad, input_grad=conv)
        if not conv:
            return
        self.pool2.backward(self._pool2_grad)
        self.conv2.backward(self.pool2.windows_grad)
        self.conv2.backward_input(self.pool2.windows_grad)
        self.pool1.backward(self._pool1_grad)
        self.conv1.backward(self.pool1.windows_grad)

    def buffers(self) -> dict[str, np.ndarray]:
        """Every activation and delta of the last batch, by name (views, not copies)."""
        return {
            "conv1.out": self.conv1.out,
            "pool1.out": self.pool1.out,
            "conv2.cols": self.conv2.cols,
            "conv2.out": self.conv2.out,
            "pool2.out": self.pool2.out,
            "fc1.out": self.fc1.out,
            "fc2.out": self.fc2.out,
            "softmax": self.loss.probabilities,
            "softmax.grad": self.loss.logits_grad,
            "fc2.input_grad": self.fc2.input_grad,
            "fc1.input_grad": self.fc1.input_grad,
            "pool2.windows_grad": self.pool2.windows_grad,
            "conv2.input_grad": self.conv2.input_grad,
            "pool1.windows_grad": self.pool1.windows_grad,
        }
