"""The runner's pieces in-process: requests, the check worker, programmatic runs, tracing and progress."""

from __future__ import annotations

import io
import json
import os
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness import recording as runner
from harness import records, storage
from harness.errors import UsageError
from harness.formatting import format_duration
from harness.interface import RunConfig
from harness.recording.progress import Progress, format_progress
from harness.worker import attribution, tracing
from harness.worker.keepers import find_keepers
from tests.helpers import LOOPS

STDLIB = attribution.STDLIB_DIRS[0]


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


def test_check_resolves_the_variant_in_another_process(tmp_path: Path) -> None:
    # GIVEN a loop file that records which process imported it
    marker = tmp_path / "imported_by"
    loop = tmp_path / "marked.py"
    loop.write_text(
        "import os, pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
        "class Loop:\n    DESCRIPTION = 'marked'\n    LEAKS = {'drip': 'keeps drops'}\n"
        "    def train_epoch(self, epoch):\n        return {}\n"
    )
    # WHEN it is checked
    found = runner.check_variant(f"{loop}:Loop", "drip")
    # THEN the verdict carries its description and leaks, and this process never imported it
    assert found == runner.VariantCheck("marked", {"drip": "keeps drops"})
    assert int(marker.read_text()) != os.getpid()
    assert not any(name.startswith("leakbench_user_marked") for name in sys.modules)


def test_check_turns_refusals_into_usage_errors() -> None:
    # GIVEN a loop without leaks WHEN checked with one THEN the worker's one-line refusal is raised here
    with pytest.raises(UsageError, match="has no leaks; run it without --leak"):
        runner.check_variant(f"{LOOPS}:SlowLoop", "grow")


def test_execute_records_a_run_and_returns_its_outcome(tmp_path: Path) -> None:
    # GIVEN a request for three epochs of a leaking test loop
    request = runner.RunRequest(f"{LOOPS}:GrowLoop", RunConfig(epochs=3, leak="grow"), tmp_path / "results")
    seen: list[str] = []
    # WHEN executed in-process (as sweep and the pytest plugin do)
    outcome = runner.execute(
        request, on_start=lambda d: seen.append(json.loads((d / "meta.json").read_text())["status"])
    )
    # THEN on_start saw the run begin, and the outcome matches what is on disk
    assert seen == ["running"]
    assert (outcome.status, outcome.exit_code, outcome.epochs_done, outcome.stop) == ("completed", 0, 3, None)
    run = storage.load_run(outcome.run_dir)
    assert run.meta == outcome.meta and run.meta["growth"] == outcome.growth
    assert run.epochs["kept_mib"].tolist() == [4.0, 8.0, 12.0]
    assert outcome.growth is not None and "verdict" in outcome.growth


# -- tracing --------------------------------------------------------------------------------


def test_allocations_are_charged_to_the_most_recent_user_frame() -> None:
    # GIVEN a traceback (most recent first) through the stdlib and NumPy, from user code called by the harness
    frames = [
        (f"{STDLIB}json/encoder.py", 10),
        ("/venv/lib/python3.11/site-packages/numpy/core/fromnumeric.py", 20),
        ("/home/me/project/loop.py", 30),
        ("/home/me/project/model.py", 40),
        (attribution.HARNESS_DIR + "worker.py", 50),
    ]
    # WHEN attributed THEN the user's innermost line is charged
    assert attribution.attribute(frames) == ("/home/me/project/loop.py", 30)
    # and without user frames: the third-party frame, else the most recent one
    assert attribution.attribute([frames[0], frames[1], frames[4]]) == frames[1]
    assert attribution.attribute([frames[0], ("<frozen importlib._bootstrap>", 1)]) == frames[0]


def test_the_harness_own_allocations_are_told_apart_from_the_loop() -> None:
    # GIVEN tracebacks (most recent first) of the worker's json encoding, of a loop's call into
    # the stdlib, and of a stdlib call chain cut off at the frame limit
    worker = (attribution.HARNESS_DIR + "worker.py", 67)
    encoder = (f"{STDLIB}json/encoder.py", 200)
    user = ("/home/me/project/loop.py", 30)
    # WHEN classified THEN only the first is the harness's bookkeeping
    assert attribution.is_bookkeeping([encoder, worker])
    assert not attribution.is_bookkeeping([encoder, user, worker])
    assert not attribution.is_bookkeeping([encoder, encoder])


def test_our_variants_count_as_user_code_even_when_installed_in_site_packages() -> None:
    # GIVEN NumPy called from one of our variants, both under site-packages after a plain `pip install .`
    variant = (attribution.VARIANTS_DIR + "buffers.py", 12)
    frames = [("/venv/lib/python3.11/site-packages/numpy/lib/shape_base.py", 5), variant]
    # WHEN attributed THEN the variant's line is charged, not NumPy's
    assert attribution.attribute(frames) == variant


def test_compare_keeps_growing_sites_and_types_largest_first() -> None:
    # GIVEN a baseline and a later state where one site grew a lot, one a little, one shrank
    a, b, c = ("/p/a.py", 1), ("/p/b.py", 2), ("/p/c.py", 3)
    baseline = tracing.HeapState(2, 1000, {a: [100, 1], b: [50, 1], c: [500, 5]}, {}, Counter({"list": 10, "dict": 5}))
    final = tracing.HeapState(
        9, 5000, {a: [4100, 41], b: [60, 2], c: [100, 1]}, {a: (a,)}, Counter({"list": 50, "dict": 4, "Node": 3})
    )
    # WHEN compared
    trace = tracing.compare(baseline, final, final_run=True)
    # THEN sites and types are the growing ones, largest first, with what they hold now
    assert [(s["file"], s["size_diff"], s["count_diff"]) for s in trace["sites"]] == [
        ("/p/a.py", 4000, 40),
        ("/p/b.py", 10, 1),
    ]
    assert trace["sites"][0]["stack"] == ["/p/a.py:1"]
    assert [(t["type"], t["count_diff"], t["count"]) for t in trace["types"]] == [("list", 40, 50), ("Node", 3, 3)]
    assert (trace["baseline_epoch"], trace["final_epoch"], trace["heap_final_bytes"], trace["final"]) == (
        2,
        9,
        5000,
        True,
    )


def _held_by_a_generator() -> Iterator[list[list[float]]]:
    kept = [[float(i)] for i in range(2000)]  # more lists than Python's free list holds: most are new
    yield kept


def test_keepers_name_the_variable_that_holds_what_grew() -> None:
    # GIVEN a suspended generator whose local keeps lists allocated under tracemalloc
    tracemalloc.start(5)
    try:
        generator = _held_by_a_generator()
        next(generator)
        code = _held_by_a_generator.__code__
        site = (code.co_filename, code.co_firstlineno + 1)
        # WHEN the keepers of that allocation site are looked for
        keepers = find_keepers([site])
    finally:
        tracemalloc.stop()
    # THEN the chain leads from an inner list to the generator's local, with the line that assigns it
    assert len(keepers) == 1
    holder = keepers[0]["holder"]
    assert (holder["kind"], holder["name"], holder["function"]) == ("local", "kept", "_held_by_a_generator")
    assert holder["line"] == code.co_firstlineno + 1 and holder["suspended_at"] == code.co_firstlineno + 2
    assert keepers[0]["chain"][0] == "list" and keepers[0]["chain"][-1].startswith("list[")


@pytest.mark.parametrize(("epochs", "expected"), [(1, 1), (4, 1), (8, 2), (12, 3), (500, 3)])
def test_baseline_is_taken_after_warm_up_but_early(epochs: int, expected: int) -> None:
    # GIVEN a run length WHEN the baseline epoch is chosen THEN it is max(1, min(3, epochs // 4))
    assert tracing.baseline_epoch(epochs) == expected


# -- progress -------------------------------------------------------------------------------


def test_progress_line_shows_epoch_rss_growth_metric_and_eta() -> None:
    # GIVEN epoch 10 of 50 at 2 epochs/s, 8 MiB above epoch 1 WHEN formatted THEN every part is there
    line = format_progress(10, 50, 24 * 1024**2, 16 * 1024**2, {"loss": 0.123456, "accuracy": 0.9}, 5.0)
    assert line == "epoch 10/50 | RSS 24.0 MiB (+8.0 MiB since epoch 1) | loss 0.1235 | 2 epochs/s | ETA 20s"
    assert len(format_progress(10, 50, 1, 1, {"loss": 1.0}, 5.0, width=20)) == 20


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0s"), (42, "42s"), (185, "3m05s"), (7620, "2h07m")])
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_progress_draws_only_when_enabled() -> None:
    # GIVEN two progress lines, one off (not a terminal, or --quiet) WHEN an epoch arrives
    record = records.EpochRecord(1, 1024**2, 1024**2, None, 1, 0.1, 0.1, {"loss": 1.0})
    quiet, shown = io.StringIO(), io.StringIO()
    for stream, enabled in ((quiet, False), (shown, True)):
        progress = Progress(1, stream, enabled=enabled)
        progress.epoch(record)
        progress.close()
    # THEN only the enabled one wrote, redrawing in place and erasing itself at the end
    assert quiet.getvalue() == ""
    assert shown.getvalue() == "\r\x1b[Kepoch 1/1 | RSS 1.0 MiB | loss 1 | 10 epochs/s\r\x1b[K"
