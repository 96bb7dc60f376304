"""What ``explain`` and ``check`` say about a late leak's onset, growth that stopped, native growth and keepers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.growth import describe_measure, format_growth, summarise_growth
from harness.report.explain import NATIVE_HINT, explain_text, keepers_text

KiB, MiB = 1024, 1024**2


def table(rss: list[float], blocks: list[float] | None = None) -> pd.DataFrame:
    """An epochs table with RSS (and Python's block count) per epoch, a page of noise on RSS."""
    noise = np.random.default_rng(0).integers(0, 2, len(rss)) * 4096
    return pd.DataFrame(
        {
            "epoch": range(1, len(rss) + 1),
            "rss_bytes": (np.asarray(rss) + 100 * MiB + noise).astype(int),
            "py_blocks": blocks if blocks is not None else [100_000 + 50 * e for e in range(len(rss))],
        }
    )


def test_a_late_leak_is_a_leak_from_its_onset_in_explain_and_check() -> None:
    # GIVEN 50 epochs flat for 40, then 1 MiB/epoch (the zoo's LateLeak at 50 epochs, called flat before)
    growth = summarise_growth(table([0.0] * 40 + [MiB * k for k in range(1, 11)]), None, None)
    # WHEN judged THEN it is a leak from epoch 41 at the rate after it, said by explain and by check's line
    assert (growth["verdict"], growth["onset"]) == ("leak", 41)
    assert abs(growth["bytes_per_epoch"] - MiB) < 0.05 * MiB
    assert "Onset: flat until epoch 40, growing from epoch 41." in explain_text({}, growth, None)
    assert describe_measure(growth, named=True, projection=False).startswith("RSS leak from epoch 41, +1.0")


def test_growth_that_stopped_is_flat_and_says_how_much_it_grew() -> None:
    # GIVEN a cache that fills 512 KiB/epoch for 30 epochs, then stays full to epoch 100
    growth = summarise_growth(table([512 * KiB * min(e, 30) for e in range(1, 101)]), None, None)
    # WHEN judged THEN flat, with the stop and the growth before it named
    assert growth["verdict"] == "flat" and abs(growth["stop"]["epoch"] - 30) <= 2
    text = explain_text({}, growth, None)
    assert "Stop: memory grew 512.0 KiB/epoch over epochs" in text and "then stopped at epoch" in text


def test_a_flat_run_has_neither_onset_nor_stop() -> None:
    # GIVEN 200 epochs of page-granular noise WHEN judged THEN flat, and no change point is named
    growth = summarise_growth(table([0.0] * 200), None, None)
    assert growth["verdict"] == "flat" and growth.get("onset") is None and not growth.get("stop")


def test_untraced_native_growth_points_to_lines_not_to_trace() -> None:
    # GIVEN RSS growing 512 KiB/epoch while Python's block count stays flat (ctypes malloc, untraced)
    growth = summarise_growth(table([512 * KiB * e for e in range(40)], [100_000.0] * 40), None, None)
    # WHEN explained THEN the growth is called native and --lines, not --trace, is the advice
    text = explain_text({"trace": False}, growth, None)
    assert growth["native_growth"] is True and NATIVE_HINT in text and "--lines" in text
    assert "re-run with --trace to see" not in text


def keeper(holder: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    """A trace.json keeper entry for the site loop.py:10."""
    return {"file": "/p/loop.py", "line": 10, "holder": holder, "chain": ["ndarray"], **extra}


def test_keepers_name_registries_atexit_and_views_for_what_they_are() -> None:
    # GIVEN keepers ending at a module registry, a class attribute, atexit, and the loop through a view
    registry = {"kind": "global", "name": "logging.root", "file": "/lib/logging/__init__.py", "line": None}
    shared = {"kind": "class", "name": "zoo.LruMethod._cached_features", "file": "/p/zoo.py", "line": None}
    exits = {"kind": "atexit", "name": "atexit", "file": None, "text": "a callback registered with atexit"}
    view = keeper(None, path="loop.samples[0].base", view_line=["/p/loop.py", 12])
    trace = {"keepers": [keeper(registry), keeper(shared), keeper(exits), view]}
    # WHEN rendered THEN each says what it is, with the path and the line that made the view
    text = keepers_text(trace, "/p")
    assert "held by module-level `logging.root` (a registry that outlives the loop)" in text
    assert "held by class attribute `zoo.LruMethod._cached_features`" in text
    assert "held by a callback registered with atexit" in text
    assert "path: loop.samples[0].base" in text and "the view was made at loop.py:12" in text


def test_a_traced_run_is_judged_less_tracemallocs_tables_and_run_warns() -> None:
    # GIVEN a traced run whose RSS grows only by tracemalloc's own tables (100 KiB/epoch)
    epochs = table([100 * KiB * e for e in range(30)]).assign(tracer_bytes=[100 * KiB * e for e in range(30)])
    # WHEN judged THEN flat, as untraced, and run's summary warns that tracing distorted RSS
    growth = summarise_growth(epochs, None, None)
    assert growth["verdict"] == "flat" and growth["less"] == "tracer_bytes"
    assert "warning: tracing distorted RSS: tracemalloc's own tables grew" in format_growth(growth)
