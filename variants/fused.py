"""The numpy variant with its element-wise passes compiled by numba: the fastest CPU style here.

Optional: needs ``pip install '.[numba]'``.  Everything but two layers is the
numpy variant's (:mod:`variants.buffers`): the same buffers, products, data,
parameters and ``history`` leak.  What changes is where NumPy spends its time
outside the matrix products, measured per step (``benchmarks/bench_fused.py``):

- max-pool + ReLU: one compiled pass forward that also keeps each window's
  winning block as int8, and one pass backward that routes the delta with it,
  instead of five and eleven NumPy passes over blocks and boolean masks;
- conv2's col2im: one compiled loop adding the patch deltas onto the input
  grid, instead of sixteen strided NumPy copies and adds.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from variants.buffers import BuffersCNN
from variants.buffers_layers import ConvOnBuffer
from variants.buffers_memory import Arena
from variants.buffers_net import BatchNet
from variants.fused_kernels import col2im, pool_relu_backward, pool_relu_forward


class FusedPoolRelu:
    """2x2 max-pool then ReLU as :class:`~variants.buffers_layers.PoolRelu` computes it, one compiled pass each way."""

    def __init__(
        self, windows: np.ndarray, out: np.ndarray, arena: Arena, name: str, windows_grad: np.ndarray | None = None
    ) -> None:
        """``windows`` (4, K, Q) is the convolution output, ``out`` (K, Q) the pooled values.

        ``windows_grad`` may be ``windows`` itself: backward reads only the winners kept by forward.
        """
        self.windows, self.out = windows, out
        self.windows_grad = arena.array(f"{name}.windows_grad", windows.shape) if windows_grad is None else windows_grad
        self._winner = arena.array(f"{name}.winner", out.shape, np.int8)

    def forward(self) -> None:
        """out = relu(max over each window); remembers each window's first maximum."""
        pool_relu_forward(self.windows, self.out, self._winner)

    def backward(self, dout: np.ndarray) -> None:
        """windows_grad: ``dout`` (K, Q) at each window's first maximum where it is positive, else 0."""
        pool_relu_backward(self._winner, dout, self.windows_grad)


class FusedConvOnBuffer(ConvOnBuffer):
    """conv2 with its input gradient's col2im compiled: one loop instead of sixteen strided NumPy passes."""

    def backward_input(self, dout: np.ndarray) -> None:
        """input_grad: the transposed convolution of ``dout`` (4, K, Q), i.e. col2im of W.T @ dout."""
        np.matmul(self._weight_t, dout, out=self._dcols)
        col2im(self._dcols, self.input_grad, self.kernel)


class FusedBatchNet(BatchNet):
    """:class:`~variants.buffers_net.BatchNet` with the compiled pooling and col2im."""

    POOLING = FusedPoolRelu
    CONV_ON_BUFFER = FusedConvOnBuffer


class NumbaCNN(BuffersCNN):
    """The seed's CNN on the numpy variant's buffers, its pooling and col2im compiled by numba."""

    DESCRIPTION: ClassVar[str] = (
        "the numpy variant with pooling and col2im compiled by numba (optional: pip install '.[numba]')"
    )
    NAME: ClassVar[str] = "numba"
    NET: ClassVar[type[BatchNet]] = FusedBatchNet
