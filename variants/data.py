"""The seed's data: 12x12 band images of three classes, and the initial parameters.

Both are driven by the run's seed through independent streams, so every variant
starts from exactly the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from variants.network import (
    CLASSES,
    CONV1_KERNELS,
    CONV1_SIZE,
    CONV2_KERNELS,
    CONV2_SIZE,
    FLAT,
    IMAGE_SIZE,
    PARAMETER_SHAPES,
    POOL,
)

TRAIN_PER_CLASS, TEST_PER_CLASS = 50, 10
TRAIN_P, TEST_P = 0.95, 0.90
PIXEL_ON = 0.5
BAND_ROWS = IMAGE_SIZE // CLASSES  # class c owns rows y with y // 4 == c


@dataclass(frozen=True)
class Dataset:
    """Images (N, 1, 12, 12) float64 and integer labels (N,), training and test."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the data and for the initial parameters."""
    data_seq, param_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(data_seq), np.random.default_rng(param_seq)


def band_images(rng: np.random.Generator, per_class: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` images of each class, classes interleaved (0, 1, 2, 0, ...)."""
    n = per_class * CLASSES
    labels = np.arange(n) % CLASSES
    rows = np.arange(IMAGE_SIZE) // BAND_ROWS  # the class each row belongs to
    in_band = rows[None, :, None] == labels[:, None, None]  # (n, 12, 1)
    on_probability = np.where(in_band, p, 1.0 - p)
    pixels = rng.random((n, IMAGE_SIZE, IMAGE_SIZE)) < on_probability
    images = np.where(pixels, PIXEL_ON, 0.0).reshape(n, 1, IMAGE_SIZE, IMAGE_SIZE)
    return images, labels.astype(np.int64)


def make_dataset(seed: int) -> Dataset:
    """The seed's 150 training (p = 0.95) and 30 test (p = 0.90) images."""
    rng, _ = _streams(seed)
    train_images, train_labels = band_images(rng, TRAIN_PER_CLASS, TRAIN_P)
    test_images, test_labels = band_images(rng, TEST_PER_CLASS, TEST_P)
    return Dataset(train_images, train_labels, test_images, test_labels)


def _conv_bound(channels: int, kernels: int, size: int) -> float:
    """Glorot-style bound from the seed: fan_out divides by the pool area that follows."""
    fan_in = channels * size * size
    fan_out = kernels * size * size / (POOL * POOL)
    return math.sqrt(6.0 / (fan_in + fan_out))


def initial_parameters(seed: int) -> dict[str, np.ndarray]:
    """The seed's initial weights in canonical names and shapes; biases and the last layer are zero."""
    _, rng = _streams(seed)
    params = {name: np.zeros(shape) for name, shape in PARAMETER_SHAPES.items()}
    a1 = _conv_bound(1, CONV1_KERNELS, CONV1_SIZE)
    params["conv1.weight"] = rng.uniform(-a1, a1, PARAMETER_SHAPES["conv1.weight"])
    a2 = _conv_bound(CONV1_KERNELS, CONV2_KERNELS, CONV2_SIZE)
    params["conv2.weight"] = rng.uniform(-a2, a2, PARAMETER_SHAPES["conv2.weight"])
    params["fc1.weight"] = rng.uniform(-1.0 / FLAT, 1.0 / FLAT, PARAMETER_SHAPES["fc1.weight"])
    return params
