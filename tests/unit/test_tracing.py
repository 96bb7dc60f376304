"""The worker's tracing in-process: which frame an allocation is charged to, the heap comparison, the keepers."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from collections.abc import Iterator

import pytest

from harness.worker import tracing
from harness.worker.heap import attribution, state
from harness.worker.heap.keepers import find_keepers

STDLIB = attribution.STDLIB_DIRS[0]


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
    # and without a user frame: the marker site naming how many frames were kept, never a library's line
    assert attribution.attribute([frames[0], frames[1], frames[4]], 3) == ("<no user frame within 3 frames>", 0)
    assert attribution.is_marker(attribution.attribute([frames[0], ("<frozen importlib._bootstrap>", 1)])[0])


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
    baseline = state.HeapState(2, 1000, {a: [100, 1], b: [50, 1], c: [500, 5]}, {}, Counter({"list": 10, "dict": 5}))
    final = state.HeapState(
        9, 5000, {a: [4100, 41], b: [60, 2], c: [100, 1]}, {a: (a,)}, Counter({"list": 50, "dict": 4, "Node": 3})
    )
    # WHEN compared
    trace = state.compare(baseline, final, final_run=True)
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
    assert keepers[0]["chain"][0] == "list"  # the largest list of the site: ``kept`` itself


@pytest.mark.parametrize(("epochs", "expected"), [(1, 1), (4, 1), (8, 2), (12, 3), (500, 3)])
def test_baseline_is_taken_after_warm_up_but_early(epochs: int, expected: int) -> None:
    # GIVEN a run length WHEN the baseline epoch is chosen THEN it is max(1, min(3, epochs // 4))
    assert tracing.baseline_epoch(epochs) == expected


class _Hoarder:
    def __init__(self) -> None:
        self.kept: list[list[float]] = []

    def epoch(self) -> None:
        self.kept.append([float(i) for i in range(5000)])


@pytest.mark.parametrize("materialised", [False, True])
def test_a_loop_attribute_is_named_whether_or_not_its_dict_was_materialised(materialised: bool) -> None:
    # GIVEN a loop keeping lists in an attribute, its __dict__ materialised (vars()) or still inline
    tracemalloc.start(5)
    try:
        loop = _Hoarder()
        if materialised:
            vars(loop)
        loop.epoch()
        code = _Hoarder.epoch.__code__
        # WHEN the keepers of the allocating line are looked for, with the loop named
        keepers = find_keepers([(code.co_filename, code.co_firstlineno + 1)], loop=loop)
    finally:
        tracemalloc.stop()
    # THEN the chain ends at the class attribute and the path reads as code, either way
    assert keepers[0]["holder"] is None and keepers[0]["chain"][-1].endswith("_Hoarder.kept")
    assert keepers[0]["path"] == "loop.kept[0]"
