"""Parallel sweeps in-process: admission by slots and caps, claims, machine seats, the schedule in meta.json, the
projection with runs alongside, and speed figures from runs that ran alone.  Real sweeps in subprocesses are in
tests/integration/test_sweep_concurrency.py and test_sweep_dask.py."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from harness import report, sweep
from harness.errors import UsageError
from harness.growth import format_growth, summarise_growth
from harness.storage import load_run, load_runs
from harness.sweep import budget, claims, machine
from tests.helpers import MIB, write_run

GIB = 1024**3


@pytest.fixture(autouse=True)
def own_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine registry of the test's own: other work on this machine does not share it."""
    folder = tmp_path / "machine"
    monkeypatch.setenv(machine.REGISTRY_VARIABLE, str(folder))
    return folder


def planned(seed: int = 0, cap: str | None = None, timing: bool = False) -> sweep.PlannedRun:
    return sweep.PlannedRun("numpy", None, seed, 5, False, memory_cap=cap, timing=timing)


def test_a_run_starts_only_while_its_slots_and_its_cap_fit() -> None:
    # GIVEN 2 slots and a 1 GiB budget
    admission = budget.Admission(2, GIB)
    # WHEN a 600 MiB run starts THEN another 600 MiB run does not fit, a 400 MiB one does
    admission.take(planned(0), 600 * MIB)
    assert not admission.admits(planned(1), 600 * MIB)
    assert admission.admits(planned(1), 400 * MIB)
    # AND a timing run needs every slot: not while anything runs, and then nothing beside it
    assert not admission.admits(planned(2, timing=True), MIB)
    admission.give(planned(0), 600 * MIB)
    assert admission.admits(planned(2, timing=True), MIB)
    admission.take(planned(2, timing=True), MIB)
    assert not admission.admits(planned(3), MIB)
    # AND so does a run judged on its tree's PSS (a neighbour's processes move it), but not one judged on USS
    pss, uss = (sweep.PlannedRun("loader", None, 0, 5, False, measure=m) for m in ("tree-pss", "tree-uss"))
    assert (admission.need(pss), admission.need(uss)) == (2, 1)


def test_a_run_without_a_cap_gets_its_share_and_one_above_a_given_budget_is_refused() -> None:
    # GIVEN a 6 GiB budget for 2 runs at once, then a 16 GiB one
    assert budget.share(6 * GIB, 2) == 3 * GIB
    assert budget.share(16 * GIB, 2) == 4 * GIB  # never above what a single run gets by default
    # WHEN a run's own cap is above the budget THEN it is refused, named, before anything runs
    with pytest.raises(UsageError, match=r"numpy s1, 5 epochs: its memory cap 2.0 GiB is more than the b 1.0 GiB"):
        budget.check_fits([planned(0), planned(1, "2GiB")], GIB, 512 * MIB, "the b")
    # AND with nothing running, an idle machine admits it (a default budget only: it runs alone)
    assert budget.Admission(2, GIB).admits(planned(1, "2GiB"), 2 * GIB)


def test_a_claimed_run_cannot_be_claimed_again_until_released_and_its_note_says_how_it_ended(tmp_path: Path) -> None:
    # GIVEN a run claimed by one sweep
    first = claims.take(tmp_path, planned(0))
    assert first is not None
    # WHEN another sweep tries THEN it cannot; another run it can
    assert claims.take(tmp_path, planned(0)) is None
    other = claims.take(tmp_path, planned(1))
    assert other is not None
    other.release()
    # WHEN the first is released with its outcome THEN the next holder reads it
    first.release("run-1", "completed")
    again = claims.take(tmp_path, planned(0))
    assert again is not None
    note = again.note()
    assert note is not None and note["run_dir"] == "run-1" and note["status"] == "completed"
    assert note["at"] > time.time() - 60
    again.release()


def test_a_seat_counts_every_run_that_shared_the_machine_even_briefly() -> None:
    # GIVEN a run seated on the machine
    with machine.seat(100 * MIB) as first:
        assert first.alongside == {}
        # WHEN a second run comes and goes, and a third comes while the first still runs
        with machine.seat(200 * MIB) as second:
            assert second.alongside == {first.name: 100 * MIB}
        with machine.seat(300 * MIB) as third:
            assert third.alongside_caps_bytes == 100 * MIB
            assert machine.live_seats() == {first.name: 100 * MIB, third.name: 300 * MIB}
        # THEN the first shared the machine with both
        assert first.shared_with() == 2
    assert machine.live_seats() == {}


def test_a_timing_run_waits_for_the_machine_to_itself(tmp_path: Path) -> None:
    # GIVEN an ordinary run seated
    order: list[str] = []

    def timing() -> None:
        with machine.seat(MIB, exclusive=True) as seat:
            order.append(f"timing started beside {len(seat.alongside)}")

    with machine.seat(MIB):
        # WHEN a timing run asks for the machine
        waiter = threading.Thread(target=timing)
        waiter.start()
        time.sleep(0.3)
        order.append("ordinary ended")
    waiter.join(10)
    # THEN it started only once the ordinary run had ended, with nothing beside it
    assert order == ["ordinary ended", "timing started beside 0"]


def test_a_seat_whose_holder_died_is_stale_and_removed(own_machine: Path) -> None:
    # GIVEN a seat file that no process holds (its holder was killed)
    own_machine.mkdir(parents=True, exist_ok=True)
    (own_machine / f"1-dead{machine.SEAT_SUFFIX}").write_text('{"cap_bytes": 1}\n')
    # WHEN the live seats are listed THEN it is not one, and it is gone
    assert machine.live_seats() == {}
    assert not (own_machine / f"1-dead{machine.SEAT_SUFFIX}").exists()


def test_the_pinned_environment_replaces_what_an_engine_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a Dask worker's environment, and the client's, which has none of the pinned variables set
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = dict.fromkeys(machine.PINNED_VARIABLES) | {"OMP_NUM_THREADS": "2"}
    # WHEN a run's environment is made THEN it has the client's values and nothing the engine added
    env = machine.run_environment(client)
    assert "MALLOC_TRIM_THRESHOLD_" not in env and env["OMP_NUM_THREADS"] == "2"


class RecordingRunner:
    """Stands in for `harness run`: writes a completed run (20 epochs, leaking 1 MiB each) and prints its path."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.calls, self.lock = delay, 0, threading.Lock()

    def __call__(self, argv: list[str], *ignored: object) -> subprocess.CompletedProcess[str]:
        options = dict(itertools.pairwise(argv))
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        run_dir = write_run(
            Path(options["--results"]),
            rss=[(100 + epoch) * MIB for epoch in range(20)],
            seed=int(options["--seed"]),
            memory_cap_bytes=int(options["--memory-cap"]),
        )
        meta = json.loads((run_dir / "meta.json").read_text())
        meta["growth"] = summarise_growth(load_run(run_dir).epochs, meta["memory_cap_bytes"], 16 * GIB)
        (run_dir / "meta.json").write_text(json.dumps(meta))
        return subprocess.CompletedProcess(argv, 0, f"{run_dir}\n", "")


def test_two_at_a_time_every_run_records_who_shared_the_machine_and_its_share(tmp_path: Path) -> None:
    # GIVEN a spec of 4 runs, 2 at a time under a 4 GiB budget (each run's default cap: 2 GiB)
    spec = sweep.parse_spec({"name": "p", "runs": [{"variants": ["numpy"], "seeds": 4, "epochs": 20}]}, "p")
    pool = sweep.LocalPool("p", tmp_path, 2, 4 * GIB, RecordingRunner(delay=0.3))
    # WHEN swept
    outcomes = sweep.run_sweep(spec, tmp_path, log=io.StringIO(), backend=pool)
    # THEN each ran once, with a cap of 2 GiB, and each shared the machine with at least one other
    assert [o.status for o in outcomes] == ["completed"] * 4
    runs = load_runs([tmp_path])
    assert {run.meta["memory_cap_bytes"] for run in runs} == {2 * GIB}
    schedules = [run.meta["schedule"] for run in runs]
    assert all(s["shared_with"] >= 1 and s["slots"] == 2 and not s["exclusive"] for s in schedules)
    # AND a run started beside another counts that one's cap: its share is the budget less it
    beside = [s for s in schedules if s["alongside_at_start"] == 1]
    assert beside and all(s["memory_share_bytes"] == 2 * GIB for s in beside)
    # AND its projection says where it reaches its share and the machine less the runs alongside
    growth = next(run.meta["growth"] for run in runs if run.meta["schedule"]["alongside_at_start"] == 1)
    assert growth["projection"]["share_epoch"] is not None
    assert "share of the sweep's memory budget" in format_growth(growth)
    assert "less the 2.0 GiB capped for the runs alongside" in format_growth(growth)
    # AND the manifest lists every run
    manifest = json.loads((tmp_path / "sweep-p.json").read_text())
    assert [entry["status"] for entry in manifest["runs"]] == ["completed"] * 4


def test_speed_figures_use_only_runs_that_ran_alone(tmp_path: Path) -> None:
    # GIVEN two seed-table runs of 200 epochs: one alone at 1 s/epoch, one beside another run at 3 s/epoch
    learning = {"correct_prob": [0.5] * 200}
    alone = write_run(tmp_path, "alone", rss=[MIB] * 200, epochs_planned=500, seed=0, metrics=learning)
    shared = write_run(tmp_path, "shared", rss=[MIB] * 200, epochs_planned=500, seed=1, metrics=learning)
    for run_dir, seconds, shared_with in ((alone, 1.0, 0), (shared, 3.0, 1)):
        epochs = pd.read_csv(run_dir / "epochs.csv")
        epochs["elapsed_s"] = seconds * epochs["epoch"]
        epochs["epoch_s"] = seconds
        epochs.to_csv(run_dir / "epochs.csv", index=False)
        meta = json.loads((run_dir / "meta.json").read_text())
        (run_dir / "meta.json").write_text(json.dumps(meta | {"schedule": {"shared_with": shared_with}}))
    runs = load_runs([tmp_path])
    # WHEN the seed's table and the run table are made
    table = report.seed_table(runs)
    rows = report.run_table(runs)
    # THEN time and speed come from the run that ran alone only; the other is marked shared
    assert table.loc[table["measure"] == "time for 200 epochs", "CNN: ours (numpy)"].item() == "200 s"
    assert list(rows.sort_values("seed")["alone"]) == [True, False]
    assert report.format_run_table(rows)["epochs/s"].str.endswith("(shared)").sum() == 1
