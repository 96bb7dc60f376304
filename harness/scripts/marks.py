"""``mark_epoch``: the one line a training script adds to have its epochs recorded by ``run --script``.

A script marks the end of each epoch with its metrics::

    from harness import mark_epoch

    for epoch in range(epochs):
        loss = train_one_epoch()
        mark_epoch(loss=loss)

Run by ``python -m harness run --script train.py``, each call is an epoch row,
measured and sent exactly as a loop's ``train_epoch`` is (the worker installs
its hook here, :mod:`harness.worker.script`).  Run as ``python train.py``, the
call checks one module global, finds no hook and returns: about 0.1 us
(``python benchmarks/bench_mark_epoch.py``).  Standard library only, and it
imports nothing, so a script pays nothing for the line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Hook = Callable[[dict[str, Any]], None]

# Set by the worker running the script; None everywhere else.
_hook: Hook | None = None


def mark_epoch(**metrics: Any) -> None:
    """End an epoch of a script recorded by leakbench, with its metrics (numbers); does nothing otherwise."""
    if _hook is not None:
        _hook(metrics)


def install_hook(hook: Hook | None) -> None:
    """Route :func:`mark_epoch` to ``hook`` (the worker's), or back to doing nothing with None."""
    global _hook
    _hook = hook
