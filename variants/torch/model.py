"""The seed's CNN in torch.nn, float64: the reference users would otherwise reach for.

Optional: needs ``pip install '.[torch]'``.  Same network, data, initial
parameters and plain gradient-descent update as the other variants
(``notes/VARIANT_SEMANTICS.md``), so it agrees with them to 1e-9.

Threads: the option ``threads`` (a positive integer) calls
``torch.set_num_threads``, which is process-wide; without it torch's default
(usually one thread per core) is left alone.

Semantics torch gives exactly as the seed wants (checked in the tests):
``nn.Conv2d`` is a cross-correlation; ``nn.MaxPool2d`` on the CPU keeps the
first maximum of a window in row-major order (it scans with a strict ``>``) and
sends the delta only there; ReLU's derivative is 0 at exactly 0; mean-reduced
cross-entropy has exactly the mean of the per-sample gradients.

The leak ``graph`` is the PyTorch FAQ's "accumulating history": the epoch's
running loss is a tensor (``total += loss``) kept in ``loss_history``, so every
step's autograd graph stays reachable.  ``backward()`` has already freed the
activations that graph saved, so what stays is its nodes: about 13 KiB of heap
per step, which glibc's fragmentation turns into about 0.23 MiB of RSS per
epoch at batch 150 (measured; ~115 MiB over the seed's 500 epochs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as error:  # the variant is optional; say how to get it
    raise ImportError("the torch variant needs PyTorch, which is not installed: pip install '.[torch]'") from error

from harness.errors import UsageError
from harness.interface import RunConfig
from harness.loops import check_leak
from variants.data import initial_parameters, make_dataset
from variants.flops import SeedFlops
from variants.network import (
    CLASSES,
    CONV1_KERNELS,
    CONV1_SIZE,
    CONV2_KERNELS,
    CONV2_SIZE,
    FLAT,
    HIDDEN,
    PARAMETER_SHAPES,
    POOL,
    learning_parameters,
)

DTYPE = torch.float64


class SeedNet(nn.Module):
    """The seed's 11 layers; parameter names are the canonical ones (``conv1.weight``, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, CONV1_KERNELS, CONV1_SIZE, dtype=DTYPE)
        self.conv2 = nn.Conv2d(CONV1_KERNELS, CONV2_KERNELS, CONV2_SIZE, dtype=DTYPE)
        self.fc1 = nn.Linear(FLAT, HIDDEN, dtype=DTYPE)
        self.fc2 = nn.Linear(HIDDEN, CLASSES, dtype=DTYPE)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(POOL)
        self.flatten = nn.Flatten()  # (channel, row, column) order, as canonical

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, 3) of images (N, 1, 12, 12); softmax is left to the loss."""
        x = self.pool(self.relu(self.conv1(images)))
        x = self.pool(self.relu(self.conv2(x)))
        x = self.relu(self.fc1(self.flatten(x)))
        return self.fc2(x)


class TorchCNN(SeedFlops):
    """The seed's CNN in torch.nn (float64) behind the training interface."""

    DESCRIPTION: ClassVar[str] = "torch.nn float64 reference (optional: pip install '.[torch]')"
    LEAKS: ClassVar[Mapping[str, str]] = {
        "graph": "PyTorch FAQ: keeps each epoch's running loss as a tensor (total += loss), "
        "so every step's autograd graph (its nodes; backward freed the activations) stays alive",
    }

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """Refuse a bad ``threads`` option before anything is written (``run`` asks while checking the variant)."""
        threads = config.option("threads")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise UsageError(f"option threads must be a positive integer, got {threads!r}")

    def __init__(self, config: RunConfig) -> None:
        check_leak(type(self), config.leak, "torch")
        self.check_config(config)
        threads = config.option("threads")
        if threads is not None:
            torch.set_num_threads(threads)
        self.config = config
        self.leak = config.leak
        data = make_dataset(config.seed)
        self.train_images = torch.from_numpy(data.train_images)
        self.train_labels = torch.from_numpy(data.train_labels)
        self.test_images = torch.from_numpy(data.test_images)
        self.test_labels = torch.from_numpy(data.test_labels)
        self.net = SeedNet()
        self.set_parameters(initial_parameters(config.seed))
        self._parameters = dict(self.net.named_parameters())
        learning = learning_parameters(config.fc_only)
        self._learning = [self._parameters[name] for name in learning]
        # Frozen layers record no graph and get no gradient: what "fc only" means in torch.
        for name, parameter in self._parameters.items():
            parameter.requires_grad_(name in learning)
        # One entry per epoch: the loss summed over the epoch's samples, for reporting.
        # With the leak each entry is a tensor still attached to its autograd graph.
        self.loss_history: list[float | torch.Tensor] = []

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training set in batches, then the test metrics."""
        n = len(self.train_labels)
        size = self.config.batch_size
        total: float | torch.Tensor = 0.0
        for start in range(0, n, size):
            images = self.train_images[start : start + size]
            labels = self.train_labels[start : start + size]
            loss = self._step(images, labels)
            if self.leak == "graph":
                total += loss * len(labels)  # the FAQ's mistake: a tensor, with its history
            else:
                total += loss.item() * len(labels)
        self.loss_history.append(total)
        summed = total.item() if isinstance(total, torch.Tensor) else total
        return {"loss": summed / n, **self._evaluate()}

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of one batch, then p <- p - lr * mean gradient."""
        loss = F.cross_entropy(self.net(images), labels)
        self.net.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for parameter in self._learning:
                parameter -= self.config.learning_rate * parameter.grad
        return loss

    def _evaluate(self) -> dict[str, float]:
        """Accuracy (argmax, first index on ties) and mean correct-class probability on the test set."""
        with torch.no_grad():
            probabilities = F.softmax(self.net(self.test_images), dim=1)
        rows = torch.arange(len(self.test_labels))
        return {
            "accuracy": (probabilities.argmax(dim=1) == self.test_labels).double().mean().item(),
            "correct_prob": probabilities[rows, self.test_labels].mean().item(),
        }

    def get_parameters(self) -> dict[str, np.ndarray]:
        """A copy of the parameters, canonical names and shapes, float64."""
        return {name: p.detach().numpy().copy() for name, p in self.net.named_parameters()}

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        """Copy canonical parameters into the modules."""
        if set(params) != set(PARAMETER_SHAPES):
            raise UsageError(f"parameters must be exactly {', '.join(PARAMETER_SHAPES)}; got {', '.join(params)}")
        with torch.no_grad():
            for name, p in self.net.named_parameters():
                value = np.asarray(params[name], dtype=np.float64)
                if value.shape != PARAMETER_SHAPES[name]:
                    raise UsageError(f"{name} must have shape {PARAMETER_SHAPES[name]}, got {value.shape}")
                p.copy_(torch.from_numpy(value))

    def loss_and_gradients(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy over the samples and its gradient for all 8 parameters; no update."""
        names = list(PARAMETER_SHAPES)
        parameters = [self._parameters[name] for name in names]
        frozen = [p for p in parameters if not p.requires_grad]
        for p in frozen:  # fc_only freezes the conv layers; the gradient is wanted for all
            p.requires_grad_(True)
        try:
            x = torch.from_numpy(np.asarray(images, dtype=np.float64))
            y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
            loss = F.cross_entropy(self.net(x), y)
            grads = torch.autograd.grad(loss, parameters)
        finally:
            for p in frozen:
                p.requires_grad_(False)
        return loss.item(), {name: g.numpy().copy() for name, g in zip(names, grads)}
