"""A plain PyTorch training script: a small MLP on synthetic data, with one leakbench line.

Run as ``python train_torch.py --epochs 40``, or recorded with
``python -m harness run --script train_torch.py -- --epochs 40``, where each
``mark_epoch`` call is an epoch row.  ``--leak`` switches on the PyTorch FAQ's
classic: ``total_loss += loss`` instead of ``loss.item()``, which keeps every
step's autograd graph alive.  ``test_train_torch.py`` beside it guards both.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from harness import mark_epoch

SAMPLES = 2048
FEATURES = 64
CLASSES = 10
BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--leak", action="store_true", help="sum the loss tensors, not their values")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # two spinning OpenMP threads slow a small model on a shared machine
    centres = torch.randn(CLASSES, FEATURES)
    labels = torch.randint(CLASSES, (SAMPLES,))
    inputs = centres[labels] + torch.randn(SAMPLES, FEATURES)
    model = nn.Sequential(nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, CLASSES))
    optimiser = torch.optim.SGD(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()

    total_loss = 0.0
    for _epoch in range(args.epochs):
        epoch_loss = 0.0
        for start in range(0, SAMPLES, BATCH):
            x, y = inputs[start : start + BATCH], labels[start : start + BATCH]
            optimiser.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimiser.step()
            if args.leak:
                total_loss += loss  # the leak: a tensor, so every step's graph stays alive
            epoch_loss += loss.item()
        with torch.no_grad():
            accuracy = (model(inputs).argmax(dim=1) == labels).float().mean().item()
        mark_epoch(loss=epoch_loss / (SAMPLES // BATCH), accuracy=accuracy)  # the one line for leakbench
    print(f"{args.epochs} epochs: loss {epoch_loss / (SAMPLES // BATCH):.4f}, accuracy {accuracy:.1%}")


if __name__ == "__main__":
    main()
