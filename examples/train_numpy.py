"""A plain NumPy training script, as a user writes one: no class, no harness API but one line.

Softmax regression on synthetic clusters, full-batch gradient descent, run as
``python train_numpy.py --epochs 30``.  The one line for leakbench is
``mark_epoch(...)`` at the end of each epoch: under
``python -m harness run --script train_numpy.py -- --epochs 30`` each call is
an epoch row; run as a plain script it does nothing.  ``test_train_numpy.py``
beside it guards its memory.
"""

from __future__ import annotations

import argparse

import numpy as np

from harness import mark_epoch

SAMPLES = 4096
FEATURES = 32
CLASSES = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    centres = rng.normal(size=(CLASSES, FEATURES))
    labels = rng.integers(CLASSES, size=SAMPLES)
    inputs = centres[labels] + rng.normal(size=(SAMPLES, FEATURES))
    weights = np.zeros((FEATURES, CLASSES))
    rows = np.arange(SAMPLES)
    history = []

    for _epoch in range(args.epochs):
        logits = inputs @ weights
        logits -= logits.max(axis=1, keepdims=True)
        predictions = np.exp(logits)
        predictions /= predictions.sum(axis=1, keepdims=True)
        # The classic leak, kept here commented out: every epoch's 320 KiB of predictions "for plotting later".
        # history.append(predictions)
        loss = float(-np.log(predictions[rows, labels]).mean())
        delta = predictions.copy()
        delta[rows, labels] -= 1.0
        weights -= args.lr * (inputs.T @ delta) / SAMPLES
        accuracy = float((logits.argmax(axis=1) == labels).mean())
        mark_epoch(loss=loss, accuracy=accuracy)  # the one line for leakbench
    print(f"{args.epochs} epochs: loss {loss:.4f}, accuracy {accuracy:.1%}, {len(history)} predictions kept")


if __name__ == "__main__":
    main()
