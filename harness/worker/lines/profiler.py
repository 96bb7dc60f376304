"""Which line grows resident memory (``run --lines``): a line profiler of RSS in the worker, writing lines.json.

memory_profiler's line profiler, as this harness needs it.  Its model: a trace
function (``sys.settrace``) sees each line of the profiled functions start,
reads the process's RSS, and charges the change since the last reading to the
line that just ran; per line it sums those changes (the *increment*) and counts
how often the line ran (*occurrences*).  RSS counts every resident page, so
native memory (a C extension's cache, ``ctypes`` or ``libc`` mallocs, numba's
LLVM objects) is seen as well as Python objects.  What differs from its
``LineProfiler``, and why (measured in benchmarks/bench_lines.py):

- RSS is one ``pread`` of ``/proc/self/statm`` on a descriptor kept open
  (a few microseconds), not a new ``psutil.Process`` per line (30 times that):
  on the ``numpy`` variant memory_profiler's profiler alone made an epoch 7x slower;
- only the profiled functions' frames get line events (the global trace
  function returns None for every other frame), so a pure-Python loop pays one
  cheap call per function call, not a Python callback per line of all its code;
- each change is charged to one line, the innermost profiled line running
  (:mod:`harness.worker.lines.ledger`), and what a line *kept* is told from what it
  only passed through.

Profiled: the loop's ``train_epoch`` and the functions named by TARGETs
(``module:qualname`` or ``path/file.py:qualname``), with the comprehensions,
lambdas and inner functions inside them; in the trainer's main thread, not in
threads or processes the loop starts.  Per line, over the epochs after the
same warm-up as ``--trace`` (:func:`harness.worker.tracing.baseline_epoch`):
occurrences, increment, kept bytes and the epochs in which they rose.  lines.json
is written at the start (no lines yet), every few seconds as an interim copy
(at most a tenth of the run, as trace.json), and at the end.
"""

from __future__ import annotations

import inspect
import linecache
import os
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from harness import loops
from harness.errors import UsageError
from harness.jsonfile import write_json_atomic
from harness.worker.lines.ledger import OUTSIDE, Key, Ledger
from harness.worker.process import PAGE, statm_reader
from harness.worker.tracing import baseline_epoch

LINES_SCHEMA_VERSION = 1
TOP = 100  # lines stored in lines.json, those that kept most first
SOURCE_WIDTH = 160  # characters of a line's source text stored
MIN_INTERVAL_S = 2.0  # at least this long between interim copies
BUDGET = 10.0  # and at least BUDGET times what the last copy took
STATM = "/proc/self/statm"


def train_epoch_of(cls: type) -> types.FunctionType:
    """The Python function behind ``cls.train_epoch``; UsageError when there is none to profile."""
    method = loops.python_function(inspect.getattr_static(cls, "train_epoch", None))
    if method is None:
        raise UsageError(f"cannot profile {cls.__qualname__}.train_epoch for --lines: it is not a Python function")
    return method


def profiled_functions(cls: type, targets: Sequence[str]) -> list[tuple[str, types.FunctionType]]:
    """(name as given, function) of ``train_epoch`` and each TARGET; UsageError naming a TARGET that cannot be."""
    found = [(f"{cls.__qualname__}.train_epoch", train_epoch_of(cls))]
    for spec in targets:
        function = loops.resolve_function(spec)
        if all(function.__code__ is not other.__code__ for _, other in found):  # named twice: profiled once
            found.append((spec, function))
    return found


def nested_codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code objects inside it: comprehensions, lambdas, inner functions."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from nested_codes(const)


def rss_reader() -> tuple[Callable[[], int], str]:
    """A function returning this process's RSS in bytes, and what it reads: statm (about 1 us), else psutil."""
    read = statm_reader()
    if read is None:
        process = psutil.Process()
        return (lambda: int(process.memory_info().rss)), "psutil memory_info"
    return read, STATM


def reading_cost_us(read: Callable[[], int], n: int = 200) -> float:
    """Microseconds one reading takes here, the median of ``n``."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        read()
        times.append(time.perf_counter() - started)
    return sorted(times)[n // 2] * 1e6


class LineProfiler:
    """The worker's side of --lines: trace ``train_epoch`` calls, account per line, write lines.json."""

    def __init__(self, path: Path, epochs: int, functions: Sequence[tuple[str, types.FunctionType]]) -> None:
        self.path = path
        self.baseline_at = baseline_epoch(epochs)
        self.functions = [
            {
                "target": name,
                "file": f.__code__.co_filename,
                "line": f.__code__.co_firstlineno,
                "function": f.__qualname__,
            }
            for name, f in functions
        ]
        # Frames are recognised by file first (one dict lookup for most calls), then first line and name.
        self._starts: dict[str, set[tuple[int, str]]] = {}
        for _, function in functions:
            for code in nested_codes(function.__code__):
                self._starts.setdefault(code.co_filename, set()).add((code.co_firstlineno, code.co_name))
        self._read, self.rss_source = rss_reader()
        self.reading_cost_us = reading_cost_us(self._read)
        self._readings = 0  # RSS readings since the baseline but those of line events (counted in ledger.runs)
        self.ledger = Ledger(PAGE)
        self.baseline: int | None = None
        self.rss_baseline: int | None = None
        self.blocks_baseline: int | None = None
        self._last_rss = self._read()
        self._current: Key | None = None  # the innermost profiled line running
        self._stack: list[Key | None] = []  # the lines of the profiled frames below it
        self._last_line: Key | None = None  # the line running when the outermost profiled frame returned
        self._owner = os.getpid()
        self._last_end = 0.0
        self._last_cost = 0.0
        self._on_call = self._make_on_call()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """A process the loop forks does not profile (and does not pay for it)."""
        if os.getpid() != self._owner:
            sys.settrace(None)

    # -- tracing (the global function runs at every call of any function while train_epoch runs: kept lean) ----
    def _charge(self) -> None:
        """Read RSS; charge its change since the last reading to the line running (or to outside)."""
        rss = self._read()
        self._readings += 1
        if rss != self._last_rss:
            self.ledger.charge(self._current or OUTSIDE, rss - self._last_rss)
            self._last_rss = rss

    def _make_on_call(self) -> Callable[[types.FrameType, str, Any], Any]:
        """The global trace function: 'call' of every frame; a profiled one gets the local trace function."""
        starts_of = self._starts.get
        enter, on_event = self._enter, self._make_on_event()

        def on_call(frame: types.FrameType, event: str, arg: Any) -> Any:
            code = frame.f_code
            starts = starts_of(code.co_filename)
            if starts is None or (code.co_firstlineno, code.co_name) not in starts:
                return None
            enter(frame, code)
            return on_event

        return on_call

    def _enter(self, frame: types.FrameType, code: types.CodeType) -> None:
        self._charge()  # what ran until now belongs to the caller's line
        self._stack.append(self._current)
        self._current = key = (code.co_filename, frame.f_lineno)
        self.ledger.functions.setdefault(key, code.co_qualname)

    def _make_on_event(self) -> Callable[[types.FrameType, str, Any], Any]:
        """The local trace function of a profiled frame: a line starts, or the frame returns (or yields)."""
        read, charge, ledger = self._read, self._charge, self.ledger
        runs, functions = ledger.runs, ledger.functions
        count = runs.get

        def on_event(frame: types.FrameType, event: str, arg: Any) -> Any:
            if event == "line":
                rss = read()  # _charge() inlined: a line event is the commonest, and each one counts
                if rss != self._last_rss:
                    ledger.charge(self._current or OUTSIDE, rss - self._last_rss)
                    self._last_rss = rss
                code = frame.f_code
                self._current = key = (code.co_filename, frame.f_lineno)
                runs[key] = count(key, 0) + 1
                if key not in functions:
                    functions[key] = code.co_qualname
            elif event == "return":
                charge()
                self._last_line = self._current
                self._current = self._stack.pop() if self._stack else None
            return on_event

        return on_event

    def call(self, train_epoch: Any, epoch: int) -> Any:
        """``train_epoch(epoch)`` with its lines profiled."""
        self._current = None
        self._charge()  # between epochs: the harness, outside the loop's lines
        self._last_line = None
        previous = sys.gettrace()
        sys.settrace(self._on_call)
        try:
            return train_epoch(epoch)
        finally:
            sys.settrace(previous)
            # The frame's locals went when it returned: charged to the line it returned from.
            self._current = self._last_line
            self._charge()
            self._current = None
            self._stack.clear()

    # -- epochs and lines.json -------------------------------------------------------------
    def start(self) -> None:
        """Write the first lines.json: which functions are profiled, no lines yet."""
        self.write(0, final=False)

    def after_epoch(self, epoch: int) -> None:
        """Open the accounts after the warm-up epoch; afterwards close each epoch, writing a copy when one is due."""
        if self.baseline is None:
            if epoch >= self.baseline_at:
                self.baseline = epoch
                self.ledger.reset()
                self._readings = 0
                self.rss_baseline = self._last_rss
                self.blocks_baseline = sys.getallocatedblocks()
            return
        self.ledger.end_epoch()
        if time.monotonic() - self._last_end >= max(MIN_INTERVAL_S, BUDGET * self._last_cost):
            self.write(epoch, final=False)

    def write(self, epoch: int, *, final: bool) -> None:
        """Write lines.json: the accounts from the baseline to ``epoch`` (none before the baseline)."""
        started = time.monotonic()
        accounted = self.baseline is not None and epoch > self.baseline
        rows = self.ledger.rows(TOP) if accounted else []
        for row in rows:
            row["source"] = linecache.getline(row["file"], row["line"]).strip()[:SOURCE_WIDTH]
        document = {
            "schema_version": LINES_SCHEMA_VERSION,
            "final": final,
            "baseline_epoch": self.baseline if self.baseline is not None else self.baseline_at,
            "final_epoch": epoch if accounted else None,
            "epochs": self.ledger.epochs if accounted else 0,
            "functions": self.functions,
            "rss_source": self.rss_source,
            "reading_cost_us": round(self.reading_cost_us, 2),
            "readings": self._readings + sum(self.ledger.runs.values()) if accounted else 0,
            "rss_baseline_bytes": self.rss_baseline if accounted else None,
            "rss_final_bytes": self._last_rss if accounted else None,
            "py_blocks_baseline": self.blocks_baseline if accounted else None,
            "py_blocks_final": sys.getallocatedblocks() if accounted else None,
            "outside": self.ledger.outside() if accounted else {"increment_bytes": 0, "kept_bytes": 0},
            "untracked_release_bytes": self.ledger.untracked_release if accounted else 0,
            "lines": rows,
        }
        write_json_atomic(self.path, document)
        self._last_end = time.monotonic()
        self._last_cost = self._last_end - started
