"""bench's turns: two processes alternate on one CPU, never run at once for long, and are never left stopped."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

from harness.bench import TURN_S, TurnTaker, turn_rate
from harness.bench.turns import shared_cpu

# Busy work in small steps, each step's end noted; the ends go to a file at the end.
STEPPER = """
import json, sys, time
ends = []
steps = int(sys.argv[2])
t0 = time.monotonic()
for _ in range(steps):
    until = time.monotonic() + 0.0005
    while time.monotonic() < until:
        pass
    ends.append(time.monotonic())
json.dump({"t0": t0, "ends": ends}, open(sys.argv[1], "w"))
"""


def _stepper(path: Path, steps: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", STEPPER, str(path), str(steps)])


def _running_spans(ends: list[float], pause_s: float) -> list[tuple[float, float]]:
    """The spans a process ran without a pause: split where two step ends are further apart than ``pause_s``."""
    spans, start = [], ends[0]
    for before, end in itertools.pairwise(ends):
        if end - before > pause_s:
            spans.append((start, before))
            start = end
    spans.append((start, ends[-1]))
    return spans


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(a1, b1) - max(a0, b0)) for a0, a1 in a for b0, b1 in b)


def test_two_processes_take_turns_and_are_continued_at_the_end(tmp_path: Path) -> None:
    # GIVEN two processes of 1,500 half-millisecond steps (0.75 s of work each)
    first, second = _stepper(tmp_path / "a.json", 1500), _stepper(tmp_path / "b.json", 1500)
    try:
        # WHEN they take turns until both end
        turns = TurnTaker(lambda: first.pid, lambda: second.pid, cpu=shared_cpu())
        turns.start()
        assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
        turns.finish()
    finally:
        for process in (first, second):
            process.kill()
    a, b = (json.loads((tmp_path / name).read_text())["ends"] for name in ("a.json", "b.json"))
    # THEN each ran in turns of about TURN_S: dozens of pauses longer than half a turn
    spans_a, spans_b = _running_spans(a, TURN_S / 2), _running_spans(b, TURN_S / 2)
    assert len(spans_a) >= 10 and len(spans_b) >= 10
    assert turns.turns >= len(spans_a) + len(spans_b) - 2
    # AND they hardly ever ran at once (at a turn's edge only): under a tenth of their running time
    running = sum(end - start for start, end in spans_a + spans_b)
    assert _overlap(spans_a, spans_b) < 0.1 * running
    # AND the steps' rate in turns leaves the pauses out: close to the 2,000 steps/s each step takes
    for ends in (a, b):
        assert 1500 < turn_rate(ends, 50, TURN_S / 2) < 2100


def test_finish_continues_a_stopped_process_and_a_late_second_is_waited_for(tmp_path: Path) -> None:
    # GIVEN a process found at once and a second that never appears
    first = _stepper(tmp_path / "a.json", 400)
    try:
        turns = TurnTaker(lambda: first.pid, lambda: None)
        turns.start()
        # THEN the first is kept stopped while the second is awaited
        deadline = time.monotonic() + 10
        while psutil.Process(first.pid).status() != psutil.STATUS_STOPPED and time.monotonic() < deadline:
            time.sleep(0.01)
        assert psutil.Process(first.pid).status() == psutil.STATUS_STOPPED
        time.sleep(0.3)
        assert not (tmp_path / "a.json").exists()
        # AND WHEN the turns are finished (as bench does in a finally) it is continued and completes
        turns.finish()
        assert first.wait(timeout=30) == 0
        assert len(json.loads((tmp_path / "a.json").read_text())["ends"]) == 400
    finally:
        first.kill()
