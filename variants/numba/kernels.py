"""Compiled passes of the numba variant: each is one loop where NumPy needs several passes.

NumPy's element-wise work in the numpy variant is cheap per element but costly
per pass: max-pooling's backward alone is nine passes over boolean masks and two
over the window blocks.  Each kernel here reads and writes every element once.

Every kernel but the ``recompile`` leak's is compiled ahead for the exact
layouts the layers hand it (all C-contiguous; the pooling winner is int8), when
this module is imported, and cached on disk by numba, so no epoch pays for
compilation and a buffer in an unexpected layout fails loudly ("No matching
definition") instead of silently running slower.  No kernel allocates.  Arithmetic is plain IEEE (no fastmath):
the pooled values are bit-for-bit NumPy's, and col2im's sums differ from
NumPy's only in the order of their terms.
"""

from __future__ import annotations

from collections.abc import Callable

try:
    from numba import njit
except ImportError as error:  # the variant is optional; say how to get it
    raise ImportError("the numba variant needs numba, which is not installed: pip install '.[numba]'") from error

import numpy as np

NOT_PASSED = -1  # winner of a window whose maximum ReLU closed: nothing flows back through it


@njit("void(float64[:, :, ::1], float64[:, ::1], int8[:, ::1])", cache=True, nogil=True, boundscheck=False)
def pool_relu_forward(windows: np.ndarray, out: np.ndarray, winner: np.ndarray) -> None:
    """out = relu(max over the 4 window blocks of ``windows`` (4, K, Q)); ``winner`` = its block, or NOT_PASSED.

    The first maximum in row-major window order wins: the same strict ``>``
    scan as the numpy variant, pairs (0, 1) and (2, 3) first, then the pairs.
    """
    kernels, columns = out.shape
    for k in range(kernels):
        for q in range(columns):
            best, index = windows[0, k, q], 0
            value = windows[1, k, q]
            if value > best:
                best, index = value, 1
            second, second_index = windows[2, k, q], 2
            value = windows[3, k, q]
            if value > second:
                second, second_index = value, 3
            if second > best:
                best, index = second, second_index
            if best > 0.0:
                out[k, q] = best
                winner[k, q] = index
            else:
                out[k, q] = 0.0
                winner[k, q] = NOT_PASSED


@njit("void(int8[:, ::1], float64[:, ::1], float64[:, :, ::1])", cache=True, nogil=True, boundscheck=False)
def pool_relu_backward(winner: np.ndarray, dout: np.ndarray, windows_grad: np.ndarray) -> None:
    """windows_grad (4, K, Q): ``dout`` (K, Q) in each window's winning block, 0.0 in the other three."""
    kernels, columns = dout.shape
    for k in range(kernels):
        for q in range(columns):
            index, delta = winner[k, q], dout[k, q]
            for block in range(4):
                windows_grad[block, k, q] = delta if index == block else 0.0


@njit("void(float64[:, :, ::1], float64[:, :, :, ::1], int64)", cache=True, nogil=True, boundscheck=False)
def col2im(dcols: np.ndarray, grad: np.ndarray, kernel: int) -> None:
    """grad (C, H, W, n) = the sum of the patch deltas ``dcols`` (4, C*k*k, rows*columns*n) at their positions.

    Block (dy, dx), row (c, i, j), column (Y, X, b) goes to grad[c, 2Y + dy + i, 2X + dx + j, b]:
    the layout of :func:`variants.numpy.layers.blocked_patches`.
    """
    channels, height, width, n = grad.shape
    rows, columns = (height - kernel + 1) // 2, (width - kernel + 1) // 2
    grad[:] = 0.0
    for block in range(4):
        dy, dx = block // 2, block % 2
        for c in range(channels):
            for i in range(kernel):
                for j in range(kernel):
                    row = (c * kernel + i) * kernel + j
                    for y in range(rows):
                        for x in range(columns):
                            start = (y * columns + x) * n
                            target = grad[c, 2 * y + dy + i, 2 * x + dx + j]
                            source = dcols[block, row, start : start + n]
                            for b in range(n):
                                target[b] += source[b]


@njit("void(float64[::1], float64[::1], float64)", cache=True, nogil=True, boundscheck=False)
def gradient_step(values: np.ndarray, grads: np.ndarray, learning_rate: float) -> None:
    """values -= learning_rate * grads: compiled once, the rate an argument (the fix of the ``recompile`` leak)."""
    for i in range(values.size):
        values[i] -= learning_rate * grads[i]


def compile_gradient_step(learning_rate: float) -> Callable[[np.ndarray, np.ndarray], None]:
    """A new kernel with ``learning_rate`` built in: the ``recompile`` leak, one per call.

    Each call makes a new closure, so numba compiles it afresh at its first use;
    its machine code and part of its LLVM objects stay in numba's JIT engine
    after the closure is dropped: about 0.86 MiB of resident memory each time,
    0.25 MiB of it Python objects of llvmlite.  Its loop is :func:`gradient_step`'s,
    written out: calling that kernel instead changes how much each compilation keeps.
    """

    @njit(cache=False)
    def step(values: np.ndarray, grads: np.ndarray) -> None:
        for i in range(values.size):
            values[i] -= learning_rate * grads[i]

    return step
