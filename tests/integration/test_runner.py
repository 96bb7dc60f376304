"""The runner's pieces that start a worker, in-process: the check worker and a programmatic run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from harness import recording as runner
from harness import storage
from harness.errors import UsageError
from harness.interface import RunConfig
from tests.helpers import LOOPS


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
