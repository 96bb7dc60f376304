"""The runner's pieces that need no worker: requests, the memory cap, the log's tail, the progress line.

The check worker and a programmatic run are in tests/integration/test_runner.py, tracing in test_tracing.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import psutil
import pytest

from harness import recording as runner
from harness.errors import UsageError
from harness.interface import RunConfig
from harness.recording.progress import Progress, format_progress
from tests.helpers import LOOPS


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"sample_interval_s": 0}, "sample interval must be between"),
        ({"sample_interval_s": float("nan")}, "sample interval must be between"),
        ({"sample_interval_s": 120}, "sample interval must be between"),
        ({"memory_cap_bytes": 0}, "memory cap must be a positive size"),
        ({"memory_cap_bytes": True}, "memory cap must be a positive size"),
        ({"timeout_s": 0}, "timeout must be a positive number"),
        ({"variant": ""}, "a variant is required"),
    ],
)
def test_run_requests_refuse_bad_values(changes: dict[str, object], fragment: str) -> None:
    # GIVEN a request with one bad value WHEN built THEN it is refused before anything starts
    fields: dict[str, object] = {"variant": f"{LOOPS}:GrowLoop", "config": RunConfig(epochs=2)} | changes
    with pytest.raises(UsageError, match=fragment):
        runner.RunRequest(**fields)  # type: ignore[arg-type]


def test_default_cap_is_at_most_4_gib_and_half_the_available_memory() -> None:
    # GIVEN this machine WHEN the default cap is taken THEN it respects both bounds, and the backstop lies above it
    cap = runner.default_memory_cap()
    assert 0 < cap <= 4 * 1024**3
    assert cap <= psutil.virtual_memory().available * 0.55  # available moves a little between the two reads
    assert runner.memory_limit_for(cap) >= 2 * cap


def test_stderr_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    # GIVEN a worker log of 30 lines WHEN its tail is taken THEN the last 20, in order
    log = tmp_path / "worker.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    assert runner.stderr_tail(log) == [f"line {i}" for i in range(10, 30)]
    assert runner.stderr_tail(tmp_path / "missing.log") == []


# -- progress -------------------------------------------------------------------------------


def test_progress_line_shows_epoch_rss_growth_metric_and_eta() -> None:
    # GIVEN epoch 10 of 50 at 2 epochs/s, 8 MiB above epoch 1 WHEN formatted THEN every part is there
    line = format_progress(10, 50, 24 * 1024**2, 16 * 1024**2, {"loss": 0.123456, "accuracy": 0.9}, 5.0)
    assert line == "epoch 10/50 | RSS 24.0 MiB (+8.0 MiB since epoch 1) | loss 0.1235 | 2 epochs/s | ETA 20s"
    assert len(format_progress(10, 50, 1, 1, {"loss": 1.0}, 5.0, width=20)) == 20


def test_progress_draws_only_when_enabled() -> None:
    # GIVEN two progress lines, one off (not a terminal, or --quiet) WHEN an epoch arrives
    quiet, shown = io.StringIO(), io.StringIO()
    for stream, enabled in ((quiet, False), (shown, True)):
        progress = Progress(1, stream, enabled=enabled)
        progress.epoch(1, 1024**2, 0.1, {"loss": 1.0})
        progress.close()
    # THEN only the enabled one wrote, redrawing in place and erasing itself at the end
    assert quiet.getvalue() == ""
    assert shown.getvalue() == "\r\x1b[Kepoch 1/1 | RSS 1.0 MiB | loss 1 | 10 epochs/s\r\x1b[K"
