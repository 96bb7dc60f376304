"""Layers of the numpy variant: each computes into buffers it was given at construction.

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

from typing import Protocol

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


class Pooling(Protocol):
    """What the network needs of a pooling layer (:class:`PoolRelu` or a compiled one)."""

    out: np.ndarray
    windows_grad: np.ndarray

    def forward(self) -> None:
        """``out`` from the window blocks."""

    def backward(self, dout: np.ndarray) -> None:
        """``windows_grad`` from the gradient ``dout`` of ``out``."""


class PoolRelu:
    """2x2 max-pool then ReLU (the same values as ReLU then pool) over window blocks (4, K, Q).

    The first maximum in row-major window order wins, as a strict ``>`` scan:
    pairs (0,1) and (2,3) are compared, then the pairs' maxima, each time keeping
    the earlier one unless the later is strictly greater.  Pooling before ReLU
    routes the delta to the first maximum of the pre-activations, which is the
    first maximum after ReLU whenever it is positive; otherwise ReLU's
    derivative makes that delta zero wherever it would go.
    """

    def __init__(
        self, windows: np.ndarray, out: np.ndarray, arena: Arena, name: str, windows_grad: np.ndarray | None = None
    ) -> None:
        """``windows`` (4, K, Q) is the convolution output; ``out`` (K, Q) receives the pooled values.

        ``windows_grad`` may be ``windows`` itself: :meth:`backward` reads the windows only before it
        writes the gradient, and one buffer instead of two keeps more of an epoch in cache.
        """
        shape = out.shape
        self.windows = windows
        self._w = tuple(windows[w] for w in range(WINDOWS))
        self.out = out
        # The pair (2, 3)'s maxima are needed only inside forward(): one scratch buffer for every pool.
        self._second_pair = arena.array("pool.scratch", shape)
        if windows_grad is None:
            windows_grad = arena.array(f"{name}.windows_grad", windows.shape)
        self.windows_grad = windows_grad
        # Never written, so zero in every plan: np.maximum(x, zeros) runs twice as fast as np.maximum(x, 0.0).
        # One buffer for every layer (the arena hands each a view of its start): less memory to keep in cache.
        self._zeros = arena.array("zeros", shape)
        self._flags = tuple(arena.array(f"{name}.flag{k}", shape, np.bool_) for k in range(3))
        self._second_wins = self._flags[1]  # written by forward(), read by backward()
        self._selected = arena.array(f"{name}.selected", windows.shape, np.bool_)
        self._chosen = tuple(self._selected[w] for w in range(WINDOWS))

    def forward(self) -> None:
        """out = relu(max over each window)."""
        w0, w1, w2, w3 = self._w
        np.maximum(w0, w1, out=self.out)  # the pair (0, 1)
        np.maximum(w2, w3, out=self._second_pair)
        # Which pair wins, for backward(), while both maxima are at hand.
        np.greater(self._second_pair, self.out, out=self._second_wins)
        np.maximum(self.out, self._second_pair, out=self.out)
        np.maximum(self.out, self._zeros, out=self.out)

    def backward(self, dout: np.ndarray) -> None:
        """windows_grad: ``dout`` (K, Q) at each window's first maximum where it is positive, else 0."""
        w0, w1, w2, w3 = self._w
        c0, c1, c2, c3 = self._chosen
        first, second, later = self._flags
        np.greater(self.out, 0.0, out=first)
        np.logical_and(second, first, out=second)  # positive, and the pair (2, 3) wins
        np.logical_xor(first, second, out=first)  # positive, and the pair (0, 1) wins
        np.greater(w1, w0, out=later)
        np.logical_and(first, later, out=c1)
        np.logical_xor(first, c1, out=c0)
        np.greater(w3, w2, out=later)
        np.logical_and(second, later, out=c3)
        np.logical_xor(second, c3, out=c2)
        # Two passes over all four blocks: bool -> 0.0/1.0, then times dout broadcast to each block
        # (a float * bool ufunc would cast through allocated buffers instead).
        np.copyto(self.windows_grad, self._selected)
        np.multiply(self.windows_grad, dout, out=self.windows_grad)


class Dense:
    """Fully connected layer ``out = W x + b`` as one GEMM: ``x`` ends with a row of ones."""

    def __init__(
        self, weight: np.ndarray, grad: np.ndarray, x: np.ndarray, out: np.ndarray, arena: Arena, name: str
    ) -> None:
        """``weight``/``grad`` (out, in + 1) with the bias last; ``x`` (in + 1, n); ``out`` (out, n)."""
        self.weight, self.grad, self.x, self.out = weight, grad, x, out
        self._ones = x[-1]
        self._x_t = x.T
        self._weight_t = weight[:, :-1].T
        self.input_grad = arena.array(f"{name}.input_grad", (x.shape[0] - 1, x.shape[1]))

    def forward(self) -> None:
        """out = W_aug @ x."""
        self._ones.fill(1.0)  # shared storage: another plan may have written here
        np.matmul(self.weight, self.x, out=self.out)

    def backward(self, dout: np.ndarray, input_grad: bool) -> None:
        """grad = dout @ x.T (bias included); ``input_grad`` = W.T @ dout if asked."""
        np.matmul(dout, self._x_t, out=self.grad)
        if input_grad:
            np.matmul(self._weight_t, dout, out=self.input_grad)


class Relu:
    """ReLU in place on a buffer; derivative 1 where the result is positive, else 0."""

    def __init__(self, values: np.ndarray, arena: Arena, name: str) -> None:
        """``values`` is rewritten by :meth:`forward`."""
        self.values = values
        self._flag = arena.array(f"{name}.flag", values.shape, np.bool_)
        self._mask = arena.array(f"{name}.mask", values.shape)
        self._zeros = arena.array("zeros", values.shape)  # never written, shared with the pools

    def forward(self) -> None:
        """values = max(values, 0)."""
        np.maximum(self.values, self._zeros, out=self.values)

    def backward(self, dout: np.ndarray) -> None:
        """dout *= (values > 0), in place."""
        np.greater(self.values, 0.0, out=self._flag)
        np.copyto(self._mask, self._flag)
        np.multiply(dout, self._mask, out=dout)


class Targets:
    """One batch's labels, and their one-hot form (classes, n)."""

    def __init__(self, labels: np.ndarray, classes: int) -> None:
        """``labels`` (n,) integers in [0, classes)."""
        n = len(labels)
        self.labels = np.asarray(labels, dtype=np.int64).copy()
        self.onehot = np.zeros((classes, n))
        self.onehot[self.labels, np.arange(n)] = 1.0


class SoftmaxCrossEntropy:
    """Softmax over the classes (axis 0) and the per-sample loss -log p[label]."""

    def __init__(self, logits: np.ndarray, arena: Arena, name: str) -> None:
        """``logits`` (classes, n) is read by :meth:`forward`."""
        classes, n = logits.shape
        self.n = n
        self._logits = logits
        self.probabilities = arena.array(f"{name}.probabilities", (classes, n))
        self._p = tuple(self.probabilities[k] for k in range(classes))
        self._scratch = arena.array(f"{name}.scratch", (classes, n))
        self._largest = arena.array(f"{name}.largest", (n,))
        self._total = arena.array(f"{name}.total", (n,))
        self.picked = arena.array(f"{name}.picked", (n,))
        self._log = arena.array(f"{name}.log", (n,))
        self.logits_grad = arena.array(f"{name}.logits_grad", (classes, n))
        self._prediction = arena.array(f"{name}.prediction", (n,), np.int64)
        self._flag = arena.array(f"{name}.flag", (n,), np.bool_)

    def forward(self, targets: Targets) -> float:
        """Probabilities (max subtracted first); returns the sum over the batch of -log p[label]."""
        self.probabilities_and_picked(targets)
        np.log(self.picked, out=self._log)
        return -float(self._log.sum())

    def probabilities_and_picked(self, targets: Targets) -> None:
        """Probabilities (max subtracted first) and ``picked``, each sample's probability of its label."""
        # Reductions over the class axis (axis 0) add row after row, the order of a per-sample loop.
        np.maximum.reduce(self._logits, axis=0, out=self._largest)
        np.subtract(self._logits, self._largest, out=self.probabilities)
        np.exp(self.probabilities, out=self.probabilities)
        np.add.reduce(self.probabilities, axis=0, out=self._total)
        np.divide(self.probabilities, self._total, out=self.probabilities)
        # p[label] as sum over classes of p * onehot: exact, and unlike np.take it feeds no NumPy cache.
        np.multiply(self.probabilities, targets.onehot, out=self._scratch)
        np.add.reduce(self._scratch, axis=0, out=self.picked)

    def backward(self, targets: Targets) -> np.ndarray:
        """logits_grad = (softmax - onehot) / n: the gradient of the batch mean loss."""
        np.subtract(self.probabilities, targets.onehot, out=self.logits_grad)
        np.divide(self.logits_grad, self.n, out=self.logits_grad)
        return self.logits_grad

    def correct(self, targets: Targets) -> int:
        """How many samples have argmax(softmax) == label, ties to the lowest class like numpy."""
        p = self._p
        best, prediction, flag = self._largest, self._prediction, self._flag
        np.copyto(best, p[0])
        prediction.fill(0)
        for k, row in enumerate(p[1:], start=1):
            np.greater(row, best, out=flag)
            np.copyto(prediction, k, where=flag)
            np.maximum(best, row, out=best)
        np.equal(prediction, targets.labels, out=flag)
        return int(np.count_nonzero(flag))
