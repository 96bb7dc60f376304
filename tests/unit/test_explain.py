"""``python -m harness explain RUN_DIR`` in-process on synthetic run directories: exact text, stored growth, errors.

The command in a subprocess is in tests/integration/test_explain.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness import storage
from harness.commands import explain as command
from harness.errors import UsageError
from harness.growth import summarise_growth
from harness.report.explain import PATH_WIDTH, explain_text
from tests.helpers import write_run

MiB = 1024**2
GiB = 1024**3
RUN_ID = "20250101T000000-lists-recursion-s0-abc123"


def lists_run(
    root: Path, rss: list[int], heap: list[int] | None = None, trace: dict[str, Any] | None = None, **meta: Any
) -> Path:
    """Run RUN_ID: 20 epochs of lists with its recursion leak planned, the given RSS (and heap) per epoch."""
    meta = {"variant": "lists", "leak": "recursion", "epochs_planned": 20} | meta
    return write_run(root, RUN_ID, rss, heap=heap, trace_json=trace, **meta)


def explain(run_dir: Path | str) -> int:
    """Run the command as the CLI would, on ``run_dir``."""
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args([str(run_dir)]))


def leak_rss() -> list[int]:
    """A 20 MiB jump after epoch 1 (warm-up), then exactly 3 MiB per epoch."""
    return [100 * MiB + (20 * MiB if e >= 2 else 0) + 3 * MiB * e for e in range(1, 21)]


def one_epoch_growth() -> dict[str, Any]:
    """The growth of a run with one epoch (inconclusive): for tests of the trace tables that follow it."""
    return summarise_growth(pd.DataFrame({"epoch": [1], "rss_bytes": [1]}))


def site(file: str, line: int, size_diff: int, count_diff: int, size: int, count: int) -> dict[str, Any]:
    return {
        "file": file,
        "line": line,
        "size_diff": size_diff,
        "count_diff": count_diff,
        "size": size,
        "count": count,
        "stack": [],
    }


def leak_trace(root: Path) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "final": True,
        "baseline_epoch": 3,
        "final_epoch": 20,
        "heap_baseline_bytes": 19 * MiB,
        "heap_final_bytes": 70 * MiB,
        "sites": [
            site(str(root / "variants" / "lists.py"), 123, 51 * MiB, 1_234_567, 52 * MiB, 1_240_000),
            site("/usr/lib/python3.11/site-packages/numpy/_core/numeric.py", 7, 1000, -2, 5000, 10),
        ],
        "types": [
            {"type": "float", "count_diff": 1_234_567, "count": 1_300_000},
            {"type": "list", "count_diff": 17, "count": 900},
        ],
    }


LEAK_REPORT = f"""\
run {RUN_ID}
  variant lists, leak recursion, seed 0: 20 of 20 epochs, completed

  memory       verdict          growth       95% CI       p  warm-up  epochs fitted
  RSS          leak     +3.0 MiB/epoch  3.0-3.0 MiB  <0.001        1  2-20 (19)
  Python heap  leak     +3.0 MiB/epoch  3.0-3.0 MiB  <0.001        0  1-20 (20)

RSS: leak: the 95% CI lies above the 32.0 KiB/epoch threshold (Mann-Kendall p<0.001).
Python heap: leak: the 95% CI lies above the 32.0 KiB/epoch threshold (Mann-Kendall p<0.001).
At this rate RSS reaches the 4.0 GiB cap at epoch ~1326 and this machine's 16.0 GiB at epoch ~5422.

Allocation sites that grew most, epoch 3 -> 20 (tracemalloc):
  traced heap 19.0 MiB -> 70.0 MiB (+51.0 MiB)
  site                          +size     +blocks      size     blocks
  variants/lists.py:123     +51.0 MiB  +1,234,567  52.0 MiB  1,240,000
  numpy/_core/numeric.py:7    +1000 B          -2   4.9 KiB         10

Object types whose live count grew most (gc-tracked objects):
  type       +count      count
  float  +1,234,567  1,300,000
  list          +17        900
"""


def test_a_traced_leak_is_explained_with_trend_projection_and_tables(tmp_path: Path, monkeypatch, capsys) -> None:
    # GIVEN a traced run leaking 3 MiB/epoch whose top site is a file under the current directory
    monkeypatch.chdir(tmp_path)
    heap = [10 * MiB + 3 * MiB * e - 5000 * (e % 2) for e in range(1, 21)]
    run_dir = lists_run(tmp_path, leak_rss(), heap, leak_trace(tmp_path))
    # WHEN explained
    code = explain(run_dir)
    # THEN the report is exactly this (120 MiB + 3 MiB * e reaches 4 GiB at e = 1326, 16 GiB at e = 5422),
    # the site path relative to the current directory and the site-packages prefix dropped
    assert code == 0
    assert capsys.readouterr().out == LEAK_REPORT


def test_explain_stores_the_growth_in_meta_and_keeps_the_rest(tmp_path: Path, capsys) -> None:
    run_dir = lists_run(tmp_path, leak_rss())
    before = json.loads((run_dir / "meta.json").read_text())
    explain(run_dir)
    after = json.loads((run_dir / "meta.json").read_text())
    # THEN growth is what summarise_growth gives for these epochs, and nothing else changed
    epochs = pd.read_csv(run_dir / "epochs.csv")
    assert after["growth"] == json.loads(json.dumps(summarise_growth(epochs, 4 * GiB, 16 * GiB)))
    assert after["growth"]["verdict"] == "leak"
    assert {k: v for k, v in after.items() if k != "growth"} == {k: v for k, v in before.items() if k != "growth"}


def test_a_flat_untraced_run_says_how_to_find_where_growth_comes_from(tmp_path: Path, capsys) -> None:
    # GIVEN an untraced run that is flat but for one page every third epoch
    run_dir = lists_run(tmp_path, [200 * MiB + 4096 * (e % 3 == 0) for e in range(1, 21)], leak=None, variant="numpy")
    explain(run_dir)
    assert (
        capsys.readouterr().out
        == f"""\
run {RUN_ID}
  variant numpy, leak none, seed 0: 20 of 20 epochs, completed

  memory  verdict      growth  95% CI      p  warm-up  epochs fitted
  RSS     flat     +0 B/epoch   0-0 B  1.000        0  1-20 (20)

RSS: flat: the 95% CI lies below the 32.0 KiB/epoch threshold.

No trace: re-run with --trace to see which lines and object types the growth comes from.
"""
    )


def test_rss_growing_while_the_heap_does_not_is_said(tmp_path: Path, capsys) -> None:
    heap = [30 * MiB + 100 * (e % 2) for e in range(1, 21)]
    explain(lists_run(tmp_path, leak_rss(), heap))
    out = capsys.readouterr().out
    assert (
        "Note: RSS grows 3.0 MiB/epoch but the Python heap only 0 B/epoch: the growth is native memory or "
        "allocator fragmentation, which tracemalloc cannot see.\n"
    ) in out
    assert "  Python heap  flat" in out


def test_a_run_with_one_epoch_shows_dashes(tmp_path: Path, capsys) -> None:
    explain(lists_run(tmp_path, [100 * MiB], status="failed"))
    out = capsys.readouterr().out
    assert "  RSS     inconclusive       -       -  -        0  -\n" in out
    assert "RSS: inconclusive: only 1 epoch; at least 6 are needed.\n" in out
    assert "1 of 20 epochs, failed" in out


def test_an_interim_trace_and_empty_tables_are_labelled() -> None:
    trace = {"final": False, "baseline_epoch": 3, "final_epoch": 9, "sites": [], "types": []}
    growth = one_epoch_growth()
    text = explain_text({"run_id": "r"}, growth, trace)
    assert (
        "Allocation sites that grew most, epoch 3 -> 9 (tracemalloc, interim: the run ended before its final "
        "trace):\n  none grew\n"
    ) in text
    assert "Object types whose live count grew most (gc-tracked objects):\n  none grew\n" in text


def test_the_top_sites_traceback_is_shown_when_recorded(tmp_path: Path) -> None:
    # GIVEN a top site whose largest traceback went through a helper in site-packages
    top = site(str(tmp_path / "loop.py"), 9, 10 * MiB, 10, 10 * MiB, 10)
    top["stack"] = [
        f"{tmp_path / 'loop.py'}:9",
        "/env/lib/site-packages/numpy/_core/numeric.py:7",
        f"{tmp_path / 'train.py'}:30",
    ]
    trace = {"baseline_epoch": 1, "final_epoch": 5, "sites": [top], "types": []}
    growth = one_epoch_growth()
    # WHEN rendered relative to tmp_path THEN the frames follow the table, shortened like sites
    assert (
        "  loop.py:9  +10.0 MiB      +10  10.0 MiB      10\n"
        "  top site's largest traceback, most recent call first:\n"
        "    loop.py:9\n"
        "    numpy/_core/numeric.py:7\n"
        "    train.py:30\n"
    ) in explain_text({}, growth, trace, root=str(tmp_path))


def test_what_keeps_the_growth_alive_is_shown(tmp_path: Path) -> None:
    # GIVEN a trace whose top site is held by a generator's local, and one held only through the loop object
    top = site(str(tmp_path / "algebra.py"), 155, 8 * MiB, 10, 16 * MiB, 20)
    held = {
        "kind": "local",
        "file": str(tmp_path / "loop.py"),
        "function": "Loop._epochs_from",
        "name": "outcomes",
        "line": 125,
        "suspended_at": 126,
    }
    trace = {
        "baseline_epoch": 1,
        "final_epoch": 3,
        "sites": [top],
        "types": [],
        "keepers": [
            {"file": top["file"], "line": 155, "holder": held, "chain": ["list", "list[149]", "tuple[1]"]},
            {"file": str(tmp_path / "loop.py"), "line": 40, "holder": None, "chain": ["bytearray", "loop.Loop.kept"]},
        ],
    }
    growth = one_epoch_growth()
    # WHEN rendered THEN each keeper names its holder and the chain of referrers to it
    assert (
        "What keeps the growth alive (referrers from a grown object outwards):\n"
        "  algebra.py:155: held by local `outcomes` of Loop._epochs_from at loop.py:125\n"
        "    via list <- list[149] <- tuple[1]\n"
        "  loop.py:40: held by the loop object (held by the worker)\n"
        "    via bytearray <- loop.Loop.kept\n"
    ) in explain_text({}, growth, trace, root=str(tmp_path))


def test_long_site_paths_keep_their_tail() -> None:
    deep = "/opt/" + "very-long-directory/" * 5 + "module.py"
    trace = {"baseline_epoch": 1, "final_epoch": 2, "types": [], "sites": [site(deep, 42, 10, 1, 10, 1)]}
    text = explain_text({}, one_epoch_growth(), trace)
    shown = next(line.split()[0] for line in text.splitlines() if line.strip().endswith("+1  10 B       1"))
    assert len(shown) == PATH_WIDTH
    assert shown.startswith("...") and shown.endswith("directory/module.py:42")


def test_a_missing_or_foreign_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        explain(tmp_path / "nope")
    with pytest.raises(UsageError, match=r"no meta\.json"):
        explain(tmp_path)


def test_a_read_only_run_is_still_explained(tmp_path: Path, monkeypatch, capsys) -> None:
    # GIVEN a run whose meta.json cannot be rewritten
    run_dir = lists_run(tmp_path, leak_rss())

    def refuse(path: Path, data: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(storage.writer, "write_json_atomic", refuse)  # store_growth writes through it
    # WHEN explained THEN the report is printed, a note says the growth was not stored, and it succeeds
    assert explain(run_dir) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"run {RUN_ID}\n")
    assert captured.err == f"note: growth not stored in {run_dir / 'meta.json'}: Permission denied\n"
