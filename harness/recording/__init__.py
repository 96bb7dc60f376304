"""Recording: the parent side of a run, which starts the worker, stores what it sends and enforces the limits.

Stage 1 of a run.  :func:`execute` takes a checked :class:`RunRequest`,
refuses a loop that cannot be loaded before anything is written
(:mod:`~harness.recording.check`), makes the run directory, starts the worker
(:mod:`harness.worker`) and supervises it (:mod:`~harness.recording.supervise`):
every record goes to disk as it arrives, the worker's process tree is sampled
between records (:mod:`~harness.recording.tree`), and the memory cap (on the
tree's PSS), the timeout, Ctrl-C and Ctrl-Z (:mod:`~harness.recording.signals`)
stop or suspend the whole tree safely.  It hands on a
finished run directory (:mod:`harness.storage`) whose meta.json carries the
status and the growth verdict (:mod:`harness.growth`), and a :class:`RunOutcome`.
"""

from harness.recording.check import CHECK_TIMEOUT_S, check_script_runs, check_variant
from harness.recording.execute import STDERR_TAIL_LINES, execute, stderr_tail
from harness.recording.outcome import describe_outcome
from harness.recording.progress import Progress
from harness.recording.request import (
    DEFAULT_SAMPLE_INTERVAL_S,
    MAX_DEFAULT_CAP,
    RunOutcome,
    RunRequest,
    VariantCheck,
    default_memory_cap,
    memory_limit_for,
)

__all__ = [
    "CHECK_TIMEOUT_S",
    "DEFAULT_SAMPLE_INTERVAL_S",
    "MAX_DEFAULT_CAP",
    "STDERR_TAIL_LINES",
    "Progress",
    "RunOutcome",
    "RunRequest",
    "VariantCheck",
    "check_script_runs",
    "check_variant",
    "default_memory_cap",
    "describe_outcome",
    "execute",
    "memory_limit_for",
    "stderr_tail",
]
