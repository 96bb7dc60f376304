"""What our own variants offer beyond the harness's training interface, for tests.

The harness needs only ``train_epoch`` (see :mod:`harness.interface`).  Our
variants also expose their parameters and gradients in the canonical form of
:mod:`variants.network`, so tests can check gradients by finite differences and
compare variants number for number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol

import numpy as np

from harness.interface import RunConfig


class CanonicalCNN(Protocol):
    """A variant of the seed's CNN that can be inspected in canonical form."""

    DESCRIPTION: ClassVar[str]
    LEAKS: ClassVar[Mapping[str, str]]

    def __init__(self, config: RunConfig) -> None: ...

    def train_epoch(self, epoch: int) -> Mapping[str, float]:
        """One epoch: returns at least ``loss``, ``accuracy`` and ``correct_prob``."""
        ...

    def get_parameters(self) -> dict[str, np.ndarray]:
        """A copy of the current parameters, canonical names and shapes, float64."""
        ...

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        """Replace the current parameters with canonical ones."""
        ...

    def loss_and_gradients(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy over the given samples and its gradient for every parameter."""
        ...
