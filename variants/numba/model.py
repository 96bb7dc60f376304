"""The numpy variant with its element-wise passes compiled by numba: the fastest CPU style here.

Optional: needs ``pip install '.[numba]'``.  Everything but two layers and the
update is the numpy variant's (:mod:`variants.numpy`): the same buffers,
products, data and parameters, so the numbers are the same bit for bit.  What
changes is where NumPy spends its time outside the matrix products, measured
per step (``benchmarks/bench_fused.py``):

- max-pool + ReLU: one compiled pass forward that also keeps each window's
  winning block as int8, and one pass backward that routes the delta with it,
  instead of five and eleven NumPy passes over blocks and boolean masks;
- conv2's col2im: one compiled loop adding the patch deltas onto the input
  grid, instead of sixteen strided NumPy copies and adds.

Its leak is numba's own: ``recompile`` builds the update kernel afresh every
epoch as a closure over the learning rate; numba compiles each new function
and keeps its machine code and part of its LLVM objects, so resident memory
grows about 0.86 MiB per epoch (about 0.25 MiB of it Python heap, in
llvmlite), and each epoch pays tens of milliseconds of compilation.  The fix
is the usual one: one kernel, compiled once, with the rate as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np

from harness.interface import RunConfig
from variants.numba.kernels import (
    col2im,
    compile_gradient_step,
    gradient_step,
    pool_relu_backward,
    pool_relu_forward,
)
from variants.numpy.conv import ConvOnBuffer
from variants.numpy.memory import Arena
from variants.numpy.model import BuffersCNN
from variants.numpy.net import BatchNet


class FusedPoolRelu:
    """2x2 max-pool then ReLU as :class:`~variants.numpy.layers.PoolRelu` computes it, one compiled pass each way."""

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
    """:class:`~variants.numpy.net.BatchNet` with the compiled pooling and col2im."""

    POOLING = FusedPoolRelu
    CONV_ON_BUFFER = FusedConvOnBuffer


class NumbaCNN(BuffersCNN):
    """The seed's CNN on the numpy variant's buffers, its pooling, col2im and update compiled by numba."""

    DESCRIPTION: ClassVar[str] = (
        "the numpy variant with pooling, col2im and update compiled by numba (optional: pip install '.[numba]')"
    )
    LEAKS: ClassVar[Mapping[str, str]] = {
        "recompile": "a new update kernel compiled every epoch, the learning rate built in; "
        "numba keeps every epoch's machine code and LLVM objects",
    }
    NAME: ClassVar[str] = "numba"
    NET: ClassVar[type[BatchNet]] = FusedBatchNet

    def __init__(self, config: RunConfig) -> None:
        """The numpy variant's model; the update is the kernel compiled at import until the leak makes one."""
        super().__init__(config)
        self._epoch_step: Callable[[np.ndarray, np.ndarray], None] | None = None

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """As the numpy variant's; with the leak, first compile this epoch's update kernel."""
        if self.config.leak == "recompile":
            # LEAK: a closure over this epoch's rate (as a schedule would write it) is a new function to
            # numba, compiled at its first call; the fix passes the rate to one kernel compiled at import.
            self._epoch_step = compile_gradient_step(self.config.learning_rate)
        return super().train_epoch(epoch)

    def _update(self, learning_rate: float) -> None:
        """values -= learning_rate * grads in one compiled loop (the same rounding as NumPy's two passes)."""
        values, grads = self._params.learning(self._fc_only)
        if self._epoch_step is None:
            gradient_step(values, grads, learning_rate)
        else:
            self._epoch_step(values, grads)
