"""A user's own training loop, outside leakbench: softmax regression on synthetic data, in NumPy.

It follows leakbench's training interface (``harness.interface.TrainingLoop``):
constructed with a ``RunConfig``, it trains one epoch per ``train_epoch(epoch)``
call and returns its metrics.  ``test_my_loop.py`` beside it guards its memory.
"""

from __future__ import annotations

import numpy as np

from harness import RunConfig

SAMPLES = 4096
FEATURES = 32
CLASSES = 10


class MyLoop:
    """Full-batch gradient descent on a linear softmax classifier."""

    DESCRIPTION = "softmax regression on synthetic clusters (a user's loop)"

    def __init__(self, config: RunConfig) -> None:
        rng = np.random.default_rng(config.seed)
        centres = rng.normal(size=(CLASSES, FEATURES))
        self.labels = rng.integers(CLASSES, size=SAMPLES)
        self.inputs = centres[self.labels] + rng.normal(size=(SAMPLES, FEATURES))
        self.weights = np.zeros((FEATURES, CLASSES))
        self.learning_rate = config.learning_rate
        self.history: list[np.ndarray] = []

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One step of gradient descent on the whole data set."""
        logits = self.inputs @ self.weights
        logits -= logits.max(axis=1, keepdims=True)
        predictions = np.exp(logits)
        predictions /= predictions.sum(axis=1, keepdims=True)
        # The classic leak, kept here commented out: every epoch's 320 KiB of predictions "for plotting later".
        # self.history.append(predictions)
        rows = np.arange(SAMPLES)
        loss = float(-np.log(predictions[rows, self.labels]).mean())
        delta = predictions.copy()
        delta[rows, self.labels] -= 1.0
        self.weights -= self.learning_rate * (self.inputs.T @ delta) / SAMPLES
        accuracy = float((logits.argmax(axis=1) == self.labels).mean())
        return {"loss": loss, "accuracy": accuracy}
