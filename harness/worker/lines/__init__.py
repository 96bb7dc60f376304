"""``run --lines``: which line grows resident memory, native memory included (lines.json).

:mod:`~harness.worker.lines.profiler` reads RSS line by line in the profiled
functions (memory-profiler's model) and writes lines.json;
:mod:`~harness.worker.lines.ledger` decides which line kept what it gained
(pure: deltas in, rows out).
"""

from harness.worker.lines.profiler import LINES_SCHEMA_VERSION, LineProfiler, profiled_functions

__all__ = ["LINES_SCHEMA_VERSION", "LineProfiler", "profiled_functions"]
