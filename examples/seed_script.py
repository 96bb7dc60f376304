"""The seed as a plain training script: its network, data and loop, no class, one ``mark_epoch`` line.

The seed's author trained the CNN with a function that recursed once per epoch
(``python seed_script.py --recursion``): each level kept its epoch's per-sample
differences until the whole recursion returned, and memory grew by megabytes
every epoch.  Their fix was a strict fold, a plain loop that drops them (the
default here).  Same network, data and updates as the ``lists`` variant
(``variants.lists``), written as a user would write a script::

    python -m harness run --script examples/seed_script.py -- --recursion --epochs 12

reproduces ``python -m harness run --variant lists --leak recursion --epochs 12``:
the same verdict and growth per epoch, the script's epochs marked by
``mark_epoch``.
"""

from __future__ import annotations

import argparse
import sys

from harness import mark_epoch
from variants.data import initial_parameters, make_dataset
from variants.lists.model import predict, sample_differences
from variants.lists.params import build_network, update_layers

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=500)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--recursion", action="store_true", help="the seed's pre-fix loop: one recursion level per epoch")
args = parser.parse_args()

data = make_dataset(args.seed)
train = list(zip(data.train_images.tolist(), data.train_labels.tolist()))
test = list(zip(data.test_images.tolist(), data.test_labels.tolist()))
layers = build_network(initial_parameters(args.seed))


def learn(samples):
    """One batch (the whole training set): its summed loss and per-sample differences; the layers updated."""
    global layers
    losses, per_sample = [], []
    for image, label in samples:
        loss, diffs = sample_differences(layers, layers[::-1], image, label)
        losses.append(loss)
        per_sample.append(diffs)
    layers = update_layers(layers, per_sample, args.lr)
    return sum(losses), per_sample


def report(loss):
    """The epoch's metrics, marked for leakbench: mean training loss, test accuracy and correct-class probability."""
    correct = correct_prob = 0.0
    for image, label in test:
        p = predict(layers, image)
        correct += p.index(max(p)) == label
        correct_prob += p[label]
    mark_epoch(loss=loss / len(train), accuracy=correct / len(test), correct_prob=correct_prob / len(test))


def train_from(epoch):
    """The seed's pre-fix loop: this level keeps its epoch's differences until the whole recursion returns."""
    outcome = learn(train)  # LEAK: held by this frame while the deeper epochs run
    report(outcome[0])
    if epoch < args.epochs:
        train_from(epoch + 1)


if args.recursion:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), args.epochs + 1000))
    train_from(1)
else:
    for _epoch in range(args.epochs):
        loss, _ = learn(train)  # the strict fold: the differences are dropped here
        report(loss)
