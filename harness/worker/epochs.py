"""One epoch's record, measured and sent: the one path of a loop's ``train_epoch`` and a script's ``mark_epoch``.

At the end of an epoch the worker reads its own RSS and peak (a pread of
/proc/self/statm and getrusage: about 2 us), counts Python's allocated blocks,
checks the metrics and sends the :class:`~harness.records.EpochRecord`'s wire
form (the parent builds and checks the record); with
``--trace`` the tracer then takes its baseline or an interim trace.  A loop's
epochs (:mod:`harness.worker.train`) and a script's marks
(:mod:`harness.worker.script`) both go through :meth:`EpochSender.send`, so
their rows are the same.
"""

from __future__ import annotations

import sys
from typing import Any

from harness import records
from harness.worker import protocol
from harness.worker.gc_readings import GcReadings
from harness.worker.process import memory_now
from harness.worker.protocol import Channel
from harness.worker.tracing import Tracer


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

    def send(self, metrics: Any, started: float, ended: float) -> None:
        """Record the epoch that ran from ``started`` to ``ended``; BadMetrics (nothing sent) for bad ``metrics``."""
        if self.readings is not None:
            self.readings.before_reading(self.epoch + 1, ended - started)
        rss, peak = memory_now()
        try:
            checked = records.check_metrics(metrics)
        except (TypeError, ValueError) as exc:
            raise BadMetrics(str(exc)) from None
        epoch = self.epoch + 1
        if self.metric_names is None:
            self.metric_names = frozenset(checked)
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
            # It walks the allocator's pools, about 15 us per 100 MiB of small objects.
            py_blocks=sys.getallocatedblocks(),
            epoch_s=ended - started,
            elapsed_s=ended - self.t0,
            metrics=checked,
            tracer_bytes=self.tracer.own_bytes() if self.tracer is not None else None,
        )
        self.epoch = epoch
        if self.tracer is not None:
            self.tracer.after_epoch(epoch)
