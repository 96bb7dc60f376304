"""leakbench harness: run training loops in a worker, record memory per epoch, judge growth."""

from harness.errors import UsageError
from harness.interface import RunConfig, TrainingLoop

__all__ = ["RunConfig", "TrainingLoop", "UsageError"]
__version__ = "0.1.0"
