"""How much arithmetic an epoch of the seed's network is: what ``bench`` sets against the machine's limit.

FLOPs are counted from the layer shapes as the numpy variant executes them: each
layer is one matrix product per pass, 2 FLOPs per multiply-add, biases included
as the extra column of ones.  Element-wise work (ReLU, pooling, softmax) is not
counted: it is memory-bound and small in FLOPs.  The limit is then

    epochs/s <= measured matmul FLOP/s / FLOPs per epoch

on the same threads (:func:`harness.bench.child.matmul_rate` measures the rate).
Every variant reports it through the training interface's optional
``flops_per_epoch()`` (:class:`SeedFlops`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.interface import RunConfig
from variants.data import TEST_PER_CLASS, TRAIN_PER_CLASS
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


def product_flops(rows: int, inner: int, columns: int) -> int:
    """FLOPs of a (rows x inner) @ (inner x columns) product."""
    return 2 * rows * inner * columns


@dataclass(frozen=True)
class SampleFlops:
    """FLOPs per sample of each pass, from the layer shapes."""

    forward: int
    backward_fc: int  # gradients of fc1 and fc2 only (fc_only)
    backward_all: int  # gradients of every layer


def sample_flops() -> SampleFlops:
    """Per-sample FLOPs of the seed's network as products of bias-augmented matrices."""
    conv1_out = IMAGE_SIZE - CONV1_SIZE + 1  # 10
    conv2_in = conv1_out // POOL  # 5
    conv2_out = conv2_in - CONV2_SIZE + 1  # 4
    conv1_depth = 1 * CONV1_SIZE * CONV1_SIZE
    conv2_depth = CONV1_KERNELS * CONV2_SIZE * CONV2_SIZE
    conv1 = product_flops(CONV1_KERNELS, conv1_depth + 1, conv1_out * conv1_out)
    conv2 = product_flops(CONV2_KERNELS, conv2_depth + 1, conv2_out * conv2_out)
    fc1 = product_flops(HIDDEN, FLAT + 1, 1)
    fc2 = product_flops(CLASSES, HIDDEN + 1, 1)
    fc2_input = product_flops(HIDDEN, CLASSES, 1)
    fc1_input = product_flops(FLAT, HIDDEN, 1)
    conv2_input = product_flops(conv2_depth, CONV2_KERNELS, conv2_out * conv2_out)
    backward_fc = fc2 + fc2_input + fc1  # weight gradients have the forward product's size
    return SampleFlops(
        forward=conv1 + conv2 + fc1 + fc2,
        backward_fc=backward_fc,
        backward_all=backward_fc + fc1_input + conv2 + conv2_input + conv1,
    )


def epoch_flops(batch_sizes: Sequence[int], test_size: int, fc_only: bool = False) -> int:
    """FLOPs of one epoch: forward and backward of every training batch, forward of the test set."""
    per = sample_flops()
    train = sum(batch_sizes)
    backward = per.backward_fc if fc_only else per.backward_all
    return train * (per.forward + backward) + test_size * per.forward


def seed_epoch_flops(batch_size: int, fc_only: bool = False) -> int:
    """FLOPs of one epoch of the seed's network and data in batches of ``batch_size``."""
    train, test = TRAIN_PER_CLASS * CLASSES, TEST_PER_CLASS * CLASSES
    sizes = [min(batch_size, train - start) for start in range(0, train, batch_size)]
    return epoch_flops(sizes, test, fc_only=fc_only)


class SeedFlops:
    """Mixin of the seed's CNN variants: ``flops_per_epoch()`` from their config, for ``python -m harness bench``."""

    config: RunConfig

    def flops_per_epoch(self) -> int:
        """Floating-point operations of one epoch (matrix products, from the layer shapes)."""
        return seed_epoch_flops(self.config.batch_size, self.config.fc_only)
