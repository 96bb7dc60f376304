"""leakbench harness: run training loops and scripts in a worker, record memory per epoch, judge growth.

``from harness import mark_epoch`` is all a training script imports, so the
rest of the package's names load on first use (a script that is not run by
the harness pays about 1 ms for the import: ``benchmarks/bench_mark_epoch.py``).
"""

from importlib import import_module
from typing import Any

from harness.scripts.marks import mark_epoch

__all__ = ["RunConfig", "TrainingLoop", "UsageError", "mark_epoch"]
__version__ = "0.1.0"

_LAZY = {"RunConfig": "harness.interface", "TrainingLoop": "harness.interface", "UsageError": "harness.errors"}


def __getattr__(name: str) -> Any:
    """``RunConfig``, ``TrainingLoop`` and ``UsageError``, imported when first asked for."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
