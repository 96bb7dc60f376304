"""The loader variant's options, checked before anything is drawn or forked: ``workers``, ``samples``, ``timeout``.

Each bad value is a :class:`~harness.errors.UsageError` with one line, so
``python -m harness run`` exits 2 and says which option and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError

DEFAULT_WORKERS = 2
# One copy of 22,500 images as Python lists of 144 floats is 100.4 MiB by tracemalloc (4,680 B an image, labels
# included) and about as much new USS (`python benchmarks/bench_loader_tree.py --size`); as one array, 24.9 MiB.
DEFAULT_SAMPLES = 22_500
DEFAULT_TIMEOUT_S = 60.0
# More processes than this on one machine is a typo, not an experiment; each worker is a fork of the trainer.
MAX_WORKERS = 64


@dataclass(frozen=True)
class LoaderOptions:
    """How many worker processes, how many training images, how long to wait for one batch."""

    workers: int = DEFAULT_WORKERS
    samples: int = DEFAULT_SAMPLES
    timeout_s: float = DEFAULT_TIMEOUT_S


def _whole(name: str, value: Any, lowest: int, highest: int | None, meaning: str) -> int:
    """``value`` as an int in [lowest, highest], or a UsageError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest or (highest and value > highest):
        bounds = f"from {lowest} to {highest}" if highest else f"of at least {lowest}"
        raise UsageError(f"loader: option {name} must be a whole number {bounds} ({meaning}), got {value!r}")
    return value


def loader_options(options: Mapping[str, Any]) -> LoaderOptions:
    """The loader's options from ``RunConfig.options``, defaults for those not given."""
    workers = _whole(
        "workers",
        options.get("workers", DEFAULT_WORKERS),
        0,
        MAX_WORKERS,
        "worker processes; 0 loads in the training process",
    )
    samples = _whole("samples", options.get("samples", DEFAULT_SAMPLES), 1, None, "training images")
    timeout = options.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise UsageError(f"loader: option timeout must be a positive number of seconds, got {timeout!r}")
    return LoaderOptions(workers=workers, samples=samples, timeout_s=float(timeout))
