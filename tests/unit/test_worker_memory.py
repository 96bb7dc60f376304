"""The worker's own memory readings: statm's RSS and ru_maxrss's peak agree with /proc/self/status."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

from harness.worker.process import memory_now

MIB = 1 << 20

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status to compare")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def _in_forked_child(work: Callable[[], Any]) -> Any:
    """What ``work`` returns when run in a forked child (as the trainer is: forked, never exec'd), sent back as JSON."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        reply = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return reply


def test_rss_and_peak_match_status_in_a_forked_child_that_grew_and_shrank() -> None:
    # GIVEN a forked child that reads its memory once (so the statm file is its own),
    # then holds 64 MiB, reads, frees it, reads
    def grow_and_shrink() -> list[tuple[int, ...]]:
        memory_now()
        held = bytearray(64 * MIB)
        held[::4096] = b"\x01" * len(held[::4096])
        grown = (*memory_now(), _status_kib("VmRSS") * 1024)
        del held
        shrunk = (*memory_now(), _status_kib("VmRSS") * 1024, _status_kib("VmHWM") * 1024)
        return [grown, shrunk]

    grown, shrunk = _in_forked_child(grow_and_shrink)
    rss, peak, status_rss = grown
    # THEN RSS is status's VmRSS (counters read a moment apart, each approximate by a few hundred pages),
    # holding the 64 MiB
    assert abs(rss - status_rss) <= MIB
    assert peak >= rss
    # AND after the free, RSS fell by the 64 MiB while the peak kept them, as VmHWM does
    rss_after, peak_after, status_rss_after, hwm = shrunk
    assert rss - rss_after >= 60 * MIB
    assert abs(rss_after - status_rss_after) <= MIB
    assert peak_after >= rss_after + 60 * MIB
    assert abs(peak_after - hwm) <= 2 * MIB  # both the child's own high-water mark


def test_a_child_reads_its_own_statm_not_its_parents() -> None:
    # GIVEN a parent that has read its memory (opening its statm) and holds 128 MiB more than its child will
    memory_now()
    held = bytearray(128 * MIB)
    held[::4096] = b"\x01" * len(held[::4096])
    parent_rss, _ = memory_now()

    def let_go() -> list[int]:
        held[:] = b""  # the child lets go of its copy of the 128 MiB
        return [memory_now()[0], _status_kib("VmRSS") * 1024]

    child_rss, child_status_rss = _in_forked_child(let_go)
    # THEN the child's reading is its own (small) RSS, not the parent's
    assert abs(child_rss - child_status_rss) <= MIB  # read a moment apart, each approximate by a few hundred pages
    assert child_rss < parent_rss - 100 * MIB
