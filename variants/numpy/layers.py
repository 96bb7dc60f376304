"""Layers of the numpy variant after the convolutions: pooling, dense, ReLU, softmax with cross-entropy.

Each computes into buffers it was given at construction; nothing here
allocates once constructed.  The layouts are those of :mod:`variants.numpy.conv`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from variants.numpy.conv import WINDOWS
from variants.numpy.memory import Arena


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
