"""The numpy variant's convolutions: im2col patch matrices in pooling-window blocks, GEMMs, col2im.

Layouts (n = samples in the batch, always the innermost axis so that copies
move long contiguous runs):

- a feature map is (C, H, W, n);
- a convolution's patch matrix is (4, C*k*k + 1, Q): one block per position of
  the 2x2 pooling window (row-major: (0,0), (0,1), (1,0), (1,1)), rows (c, i, j)
  then a row of ones that multiplies the bias column of the weight, columns
  (Y, X, sample) over the pooled grid (Q = H/2 * W/2 * n);
- so a convolution's output (4, K, Q) holds, block by block, the four values
  each pooling window compares, every block contiguous: pooling is a few
  element-wise operations on whole blocks, never a per-window loop.

Nothing here allocates once constructed: every ``forward``/``backward`` writes
with ``out=`` into the buffers it owns or was handed.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from variants.numpy.memory import Arena

WINDOWS = 4  # positions of a 2x2 pooling window


def view_as(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` reshaped without copying; raises if only a copy could have that shape."""
    view = array.reshape(shape)
    if view.size and not np.shares_memory(view, array):
        raise ValueError(f"cannot view {array.shape} with strides {array.strides} as {shape}")
    return view


def blocked_patches(source: np.ndarray, kernel: int) -> np.ndarray:
    """Read-only view (2, 2, C, k, k, Y, X, n) of ``source`` (C, H, W, n):
    ``[dy, dx, c, i, j, Y, X, b] = source[c, 2Y + dy + i, 2X + dx + j, b]``."""
    channels, height, width, n = source.shape
    sc, sh, sw, sb = source.strides
    shape = (2, 2, channels, kernel, kernel, (height - kernel + 1) // 2, (width - kernel + 1) // 2, n)
    return as_strided(source, shape, (sh, sw, sc, sh, sw, 2 * sh, 2 * sw, sb), writeable=False)


def strided_positions(target: np.ndarray, y: int, x: int, rows: int, columns: int) -> np.ndarray:
    """Writable 4-D view (C, Y, X, n) of ``target`` (C, H, W, n): ``[c, Y, X, b] = target[c, 2Y + y, 2X + x, b]``.

    Kept 4-D on purpose: for ``np.add(v, d, out=v)`` on a 5-D or deeper strided
    view ``v``, NumPy 2.4 does not recognise the in-place operation as safe and
    copies ``v`` first (measured: 190 KB per add); on 4-D views it does not.
    """
    return target[:, y : y + 2 * rows - 1 : 2, x : x + 2 * columns - 1 : 2, :]


def patch_columns(images: np.ndarray, kernel: int) -> np.ndarray:
    """A new patch matrix (4, C*k*k + 1, Q) of images (N, C, H, W), ones in the last row of each block."""
    source = images.transpose(1, 2, 3, 0)  # (C, H, W, N): a view, strides do the rest
    patches = blocked_patches(source, kernel)
    _, _, channels, _, _, rows, columns, n = patches.shape
    cols = np.ones((WINDOWS, channels * kernel * kernel + 1, rows * columns * n))
    np.copyto(view_as(cols[:, :-1], patches.shape), patches)
    return cols


class Conv:
    """Valid stride-1 convolution with bias as one batched GEMM over pooling-window blocks of
    patch matrices handed in by :meth:`use_columns` (conv1: computed once per batch)."""

    def __init__(
        self,
        weight: np.ndarray,
        grad: np.ndarray,
        in_shape: tuple[int, int, int],
        kernel: int,
        n: int,
        arena: Arena,
        name: str,
    ) -> None:
        """``weight``/``grad`` are (K, C*k*k + 1) views with the bias last; the input is (C, H, W) per sample."""
        channels, height, width = in_shape
        self.rows, self.columns = (height - kernel + 1) // 2, (width - kernel + 1) // 2
        self.depth = channels * kernel * kernel
        self.kernel = kernel
        q = self.rows * self.columns * n
        self.weight, self.grad = weight, grad
        self.out = arena.array(f"{name}.out", (WINDOWS, weight.shape[0], q))
        self._grad_parts = arena.array(f"{name}.grad_parts", (WINDOWS, weight.shape[0], self.depth + 1))
        self.use_columns(np.zeros((WINDOWS, self.depth + 1, 0)))  # placeholder: a product with it fails loudly

    def use_columns(self, cols: np.ndarray, cols_t: np.ndarray | None = None) -> None:
        """Multiply these patch matrices (4, C*k*k + 1, Q) from now on; ``cols_t`` is their transpose view."""
        self.cols = cols
        self._cols_t = cols.transpose(0, 2, 1) if cols_t is None else cols_t

    def forward(self) -> None:
        """out[w] = W_aug @ cols[w] for the four window positions."""
        np.matmul(self.weight, self.cols, out=self.out)

    def backward(self, dout: np.ndarray) -> None:
        """Weight and bias gradient from ``dout`` (4, K, Q)."""
        np.matmul(dout, self._cols_t, out=self._grad_parts)
        np.add.reduce(self._grad_parts, axis=0, out=self.grad)


class ConvOnBuffer(Conv):
    """A :class:`Conv` that reads its input buffer (C, H, W, n): im2col each forward, input gradient."""

    def __init__(
        self,
        weight: np.ndarray,
        grad: np.ndarray,
        source: np.ndarray,
        kernel: int,
        arena: Arena,
        name: str,
    ) -> None:
        """``source`` (C, H, W, n) is the buffer the previous layer writes."""
        channels, height, width, n = source.shape
        super().__init__(weight, grad, (channels, height, width), kernel, n, arena, name)
        rows, columns, depth = self.rows, self.columns, self.depth
        self.use_columns(arena.array(f"{name}.cols", (WINDOWS, depth + 1, rows * columns * n)))
        blocked = (2, 2, channels, kernel, kernel, rows, columns, n)
        self._patches = blocked_patches(source, kernel)
        self._patch_target = view_as(self.cols[:, :-1], blocked)
        self._ones = self.cols[:, -1]
        # Backward to the input: patch-shaped deltas, then added back onto the input grid.
        self.input_grad = arena.array(f"{name}.input_grad", source.shape)
        self._dcols = arena.array(f"{name}.dcols", (WINDOWS, depth, rows * columns * n))
        # Block w = (dy, dx), row (c, i, j) of the deltas goes to input rows 2Y + dy + i, columns 2X + dx + j.
        dcols = view_as(self._dcols, blocked)
        parts = {
            (dy, dx, i, j): (strided_positions(self.input_grad, dy + i, dx + j, rows, columns), dcols[dy, dx, :, i, j])
            for dy in range(2)
            for dx in range(2)
            for i in range(kernel)
            for j in range(kernel)
        }
        # The parts at offsets (0 or 1, 0 or 1) cover the first 2*rows x 2*columns positions once each:
        # copied, not added, they replace the zero fill there (0 + x is x, so the sums are unchanged).
        first: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        for dy, dx, i, j in parts:
            first.setdefault((dy + i, dx + j), (dy, dx, i, j))
        copied = [first[a, b] for a in range(2) for b in range(2)]
        self._col2im_copies = [parts[key] for key in copied]
        self._col2im = [part for key, part in parts.items() if key not in copied]
        # What the copies leave: the last rows, and the last columns of the other rows.
        self._border = (self.input_grad[:, 2 * rows :], self.input_grad[:, : 2 * rows, 2 * columns :])
        self._weight_t = weight[:, :-1].T  # (C*k*k, K), a view BLAS reads as a transpose

    def forward(self) -> None:
        """Copy the patches of the input into the patch matrix, then the product."""
        np.copyto(self._patch_target, self._patches)
        self._ones.fill(1.0)  # plans of other batch sizes share this storage and overwrite the ones
        super().forward()

    def backward_input(self, dout: np.ndarray) -> None:
        """input_grad: the transposed convolution of ``dout`` (4, K, Q), i.e. col2im of W.T @ dout."""
        np.matmul(self._weight_t, dout, out=self._dcols)
        for target, part in self._col2im_copies:
            np.copyto(target, part)
        for border in self._border:
            border.fill(0.0)
        for target, part in self._col2im:
            np.add(target, part, out=target)
