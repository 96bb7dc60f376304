"""A user's own training loop with PyTorch's ``DataLoader``, and the best-known data-loader "leak".

It follows leakbench's training interface (``harness.interface.TrainingLoop``)
and needs torch (``pip install torch``).  Softmax regression on synthetic
clusters, fed by ``DataLoader(num_workers=2, persistent_workers=True)`` that
draws a random tenth of the data set each epoch (a ``RandomSampler`` with
``num_samples``, as one does with a data set too large for whole epochs).

Leak ``copy-on-read`` (pytorch/pytorch#13246, "DataLoader num_workers > 0
causes CPU memory from parent process to be replicated in all worker
processes"): the ``Dataset`` holds its samples as Python lists of floats.  The
workers are forked and start sharing those pages with the training process,
but every sample a worker reads has its floats' reference counts written, so
the kernel copies the pages holding them into that worker.  Each epoch touches
new samples: the workers grow epoch after epoch towards a full copy each, while
the training process's own RSS stays flat.  Only the process tree's PSS shows
it.  The fix: the same numbers in one tensor (``TensorDataset``), read by
indexing, with no per-sample Python objects.  Both give the same numbers.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

from harness import RunConfig

SAMPLES = 24_000  # as Python lists about 120 MiB (128 floats of 32 bytes and a list per sample)
FEATURES = 128
CLASSES = 10
BATCH = 100
EPOCH_SHARE = 10  # each epoch trains on a random 1/EPOCH_SHARE of the samples


class ListDataset(Dataset):
    """The leak: every sample a Python list of floats, as a data set parsed from text or JSON often is."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray) -> None:
        self.inputs: list[list[float]] = inputs.tolist()
        self.labels: list[int] = labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        # Reading the list writes the reference count of every float in it: its page is copied into this worker.
        return torch.tensor(self.inputs[index], dtype=torch.float32), self.labels[index]


class TorchLoaderLoop:
    """Softmax regression trained on batches from two persistent, forked DataLoader workers."""

    DESCRIPTION: ClassVar[str] = (
        "softmax regression fed by torch's DataLoader with 2 persistent workers (a user's loop)"
    )
    LEAKS: ClassVar[dict[str, str]] = {
        "copy-on-read": "the Dataset holds Python lists of floats: each worker that reads a sample copies "
        "its pages (pytorch/pytorch#13246)",
    }

    def __init__(self, config: RunConfig) -> None:
        torch.set_num_threads(int(config.option("threads", 1)))  # a second OpenMP thread spins on a busy machine
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        samples = int(config.option("samples", SAMPLES))
        centres = rng.normal(size=(CLASSES, FEATURES))
        labels = rng.integers(CLASSES, size=samples)
        inputs = (centres[labels] + rng.normal(size=(samples, FEATURES))).astype(np.float32)
        if config.leak == "copy-on-read":
            dataset: Dataset = ListDataset(inputs, labels)
        else:
            dataset = TensorDataset(torch.from_numpy(inputs), torch.from_numpy(labels))
        sampler = RandomSampler(
            dataset, num_samples=samples // EPOCH_SHARE, generator=torch.Generator().manual_seed(config.seed)
        )
        self.loader: DataLoader | None = DataLoader(
            dataset,
            batch_size=BATCH,
            sampler=sampler,
            num_workers=int(config.option("workers", 2)),
            persistent_workers=True,
            multiprocessing_context="fork",  # copy-on-write is what fork shares; Linux's default before Python 3.14
        )
        self.model = torch.nn.Linear(FEATURES, CLASSES)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.learning_rate)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over this epoch's random tenth of the samples."""
        assert self.loader is not None, "the loop is closed"
        total, correct, seen = 0.0, 0, 0
        for inputs, labels in self.loader:
            logits = self.model(inputs)
            loss = functional.cross_entropy(logits, labels)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(labels)
            correct += int((logits.argmax(dim=1) == labels).sum())
            seen += len(labels)
        return {"loss": total / seen, "accuracy": correct / seen}

    def close(self) -> None:
        """Stop the persistent workers: they end when the DataLoader and its iterator are released."""
        self.loader = None
