"""One epoch's record, measured and sent: the one path of a loop's ``train_epoch`` and a script's ``mark_epoch``.

At the end of an epoch the worker reads its own RSS and peak (a pread of
/proc/self/statm and getrusage: about 2 us), counts Python's allocated blocks
(at most every :data:`BLOCKS_EVERY_S`), checks the metrics and sends the :class:`~harness.records.EpochRecord`'s wire
form (the parent builds and checks the record); with
``--trace`` the tracer then takes its baseline or an interim trace.

The first epoch goes as a JSON line.  Later ones, while the run is not traced
and the metrics keep the first epoch's names and are plain numbers, go as a
binary frame (:data:`harness.worker.protocol.EPOCH_FRAME`): the few lines of
this fast path are what runs between two epochs, when the loop has just
pushed the interpreter out of the CPU's caches and every line costs ten times
its usual time.  Anything else takes the first epoch's checked path.  A loop's
epochs (:mod:`harness.worker.train`) and a script's marks
(:mod:`harness.worker.script`) both go through :meth:`EpochSender.send`, so
their rows are the same.
"""

from __future__ import annotations

import struct
import sys
from typing import Any

from harness import records
from harness.worker import protocol
from harness.worker.gc_readings import GcReadings
from harness.worker.process import memory_now
from harness.worker.protocol import Channel
from harness.worker.tracing import Tracer

# Counting Python's blocks walks every pool of its allocator: 15 us after a 1 ms NumPy epoch, 1.5% of it,
# for a figure read as a trend over many epochs.  So a row carries it when this long has passed since the
# last count (every row of a loop of 10 ms epochs or slower; every tenth or so of a 1 ms loop), else none.
BLOCKS_EVERY_S = 0.01


class BadMetrics(ValueError):
    """The metrics of an epoch are not a mapping of names to numbers (nothing was sent)."""


class EpochSender:
    """Numbers the epochs, measures the worker at the end of each, sends the records."""

    def __init__(self, channel: Channel, tracer: Tracer | None, t0: float, readings: GcReadings | None = None) -> None:
        self.channel = channel
        self.tracer = tracer
        self.readings = readings  # garbage-aware readings: collect before reading when the policy says so
        self.t0 = t0  # time.monotonic() when the first epoch started: elapsed_s counts from it
        self.epoch = 0  # the last epoch sent
        self.metric_names: frozenset[str] | None = None
        self._names: tuple[str, ...] = ()  # the first epoch's metric names, in the order it sent them
        self._frame: struct.Struct | None = None  # the epoch frame, once the first epoch named the metrics
        self._blocks_at = -float("inf")  # when Python's blocks were last counted

    def send(self, metrics: Any, started: float, ended: float) -> None:
        """Record the epoch that ran from ``started`` to ``ended``; BadMetrics (nothing sent) for bad ``metrics``."""
        if self.readings is not None:
            self.readings.before_reading(self.epoch + 1, ended - started)
        rss, peak = memory_now()
        if self._frame is not None:
            values = self._plain_values(metrics)
            if values is not None:
                epoch, blocks = self.epoch + 1, self._blocks(ended)
                fixed = (epoch, rss, peak, -1 if blocks is None else blocks, ended - started, ended - self.t0)
                self.channel.write(self._frame.pack(protocol.FRAME_MARK, len(values), *fixed, *values))
                self.epoch = epoch
                return
        self._send_checked(metrics, started, ended, rss, peak)

    def _blocks(self, now: float) -> int | None:
        """Python's allocated blocks, when :data:`BLOCKS_EVERY_S` has passed since they were last counted."""
        if now - self._blocks_at < BLOCKS_EVERY_S:
            return None
        self._blocks_at = now
        return sys.getallocatedblocks()

    def _plain_values(self, metrics: Any) -> list[float] | None:
        """The metrics as floats in the first epoch's order, if they are a dict of its names and numbers; else None."""
        if metrics is None:
            return [] if not self._names else None
        if type(metrics) is not dict or metrics.keys() != self.metric_names:
            return None
        values = []
        for name in self._names:
            value = metrics[name]
            if type(value) is bool:  # float(True) is 1.0: the checked path refuses it with its message
                return None
            try:
                values.append(float(value))
            except (TypeError, ValueError):
                return None
        return values

    def _send_checked(self, metrics: Any, started: float, ended: float, rss: int, peak: int) -> None:
        """The record as a JSON line, with the metrics checked (BadMetrics when they are not a mapping of numbers)."""
        try:
            checked = records.check_metrics(metrics)
        except (TypeError, ValueError) as exc:
            raise BadMetrics(str(exc)) from None
        epoch = self.epoch + 1
        if self.metric_names is None:
            self.metric_names = frozenset(checked)
            if self.tracer is None and len(checked) <= protocol.MAX_FRAME_METRICS:
                self._names, self._frame = tuple(checked), protocol.epoch_frame(len(checked))
        elif not self.metric_names.issuperset(checked):
            extra = ", ".join(sorted(set(checked) - self.metric_names))
            print(f"leakbench: epoch {epoch} returned metrics not in epoch 1 ({extra}); not recorded", file=sys.stderr)
        # The wire form of an EpochRecord, built directly: the parent builds and checks the record
        # (EpochRecord.from_dict), so building it here too cost 5 us an epoch for nothing.
        self.channel.send(
            protocol.EPOCH,
            epoch=epoch,
            rss_bytes=rss,
            peak_rss_bytes=peak,
            heap_bytes=self.tracer.heap_bytes() if self.tracer is not None else None,
            # Blocks held by Python's small-object allocator: every live float, int, list, dict...
            py_blocks=self._blocks(ended),
            epoch_s=ended - started,
            elapsed_s=ended - self.t0,
            metrics=checked,
            tracer_bytes=self.tracer.own_bytes() if self.tracer is not None else None,
        )
        self.epoch = epoch
        if self.tracer is not None:
            self.tracer.after_epoch(epoch)
