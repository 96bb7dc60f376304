"""The worker: the child process that imports and trains the loop, measures itself and sends records.

Stage 2 of a run.  The parent (:mod:`harness.recording`) starts ``python -m
harness.worker`` and reads what it sends; this package is the only place
training code runs.  It hands the parent JSON lines on a pipe
(:mod:`~harness.worker.protocol`): one epoch record per epoch, and with
``--trace`` a trace.json (:mod:`~harness.worker.tracing`: tracemalloc sites,
:mod:`~harness.worker.attribution`: which line they are charged to,
:mod:`~harness.worker.keepers`: what keeps them alive).  It imports neither
pandas nor matplotlib, so it measures the loop and not the harness.
"""

from harness.worker.process import memory_now
from harness.worker.protocol import Channel, worker_command

__all__ = ["Channel", "memory_now", "worker_command"]
