"""The live progress line of ``run`` on a terminal: epoch/planned, RSS, growth so far, a metric, ETA."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from harness.formatting import format_duration, format_size
from harness.records import Sample

REDRAW_S = 0.1  # at most ten redraws a second: a fast loop must not spend its time on the terminal


def format_progress(
    epoch: int,
    planned: int | None,
    rss_bytes: int | None,
    first_rss_bytes: int | None,
    metrics: Mapping[str, float],
    elapsed_s: float,
    width: int = 100,
    children: int = 0,
    tree_pss_bytes: int | None = None,
) -> str:
    """The progress line, cut to ``width`` characters; the tree's PSS when the worker has children.

    ``planned`` is None for a script, which ends when it ends: no ETA.
    """
    parts = [f"epoch {epoch}/{planned}" if planned is not None else f"epoch {epoch}"]
    if rss_bytes is not None:
        rss = f"RSS {format_size(rss_bytes)}"
        if first_rss_bytes is not None and epoch > 1:
            growth = rss_bytes - first_rss_bytes
            rss += f" ({'+' if growth >= 0 else ''}{format_size(growth)} since epoch 1)"
        parts.append(rss)
    if children and tree_pss_bytes is not None:
        parts.append(f"{children} child{'ren' if children > 1 else ''}, tree PSS {format_size(tree_pss_bytes)}")
    if metrics:
        name, value = next(iter(metrics.items()))
        parts.append(f"{name} {value:.4g}")
    if epoch > 0 and elapsed_s > 0:
        rate = epoch / elapsed_s
        parts.append(f"{rate:.3g} epochs/s")
        if planned is not None and epoch < planned:
            parts.append(f"ETA {format_duration((planned - epoch) / rate)}")
    return " | ".join(parts)[:width]


class Progress:
    """Redraws one line on ``stream`` (stderr) as records and samples arrive; silent unless enabled."""

    def __init__(self, planned: int | None, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.planned = planned
        self._epoch = 0
        self._rss: int | None = None
        self._first_rss: int | None = None
        self._metrics: Mapping[str, float] = {}
        self._elapsed = 0.0
        self._drawn_at = 0.0
        self._shown = False
        self._children = 0
        self._tree_pss: int | None = None

    def epoch(self, epoch: int, rss_bytes: int, elapsed_s: float, metrics: Mapping[str, float]) -> None:
        """A finished epoch: its number, the worker's RSS at its end, its end from the first epoch's start."""
        self._epoch = epoch
        self._rss = rss_bytes
        if self._first_rss is None:
            self._first_rss = rss_bytes
        self._metrics = metrics
        self._elapsed = elapsed_s
        self._draw(force=epoch == self.planned)

    def sample(self, sample: Sample) -> None:
        """A timed sample: the RSS shown moves between epochs too, and so does the tree."""
        self._rss = sample.rss_bytes
        self._children = sample.tree.children or 0
        if sample.tree.tree_pss_bytes is not None:
            self._tree_pss = sample.tree.tree_pss_bytes
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < REDRAW_S:
            return
        self._drawn_at = now
        width = shutil.get_terminal_size((100, 24)).columns - 1
        line = format_progress(
            self._epoch,
            self.planned,
            self._rss,
            self._first_rss,
            self._metrics,
            self._elapsed,
            width,
            self._children,
            self._tree_pss,
        )
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Erase the line, so what follows starts on a clean line."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
