"""`python -m harness run` and `list` as a user runs them: the CLI in a subprocess, in a temporary directory."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

import harness
from harness import storage
from harness.loops import VariantInfo, list_variants, registered_variants
from tests.helpers import KNOWN_LEAK, LOOPS, cli, harness_argv, loop, run_dir_of

MiB = 1024**2


# -- completed runs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("leak", "growing"), [("grow", True), (None, False)])
def test_a_user_loop_from_a_file_is_recorded_every_epoch(tmp_path: Path, leak: str | None, growing: bool) -> None:
    # GIVEN a user's loop given by file path, which keeps 4 MiB per epoch when its leak is on
    leak_args = ["--leak", leak] if leak else []
    # WHEN it runs for 8 epochs
    done = cli("run", "--variant", loop("GrowLoop"), *leak_args, "--epochs", "8", cwd=tmp_path)
    # THEN it completes, prints the verdict and the run directory, under ./results by default
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: no progress line
    run_dir = run_dir_of(done, tmp_path)
    assert run_dir.parent == tmp_path / "results"
    assert done.stdout.splitlines()[0] == "completed 8/8 epochs"
    assert re.search(r"^verdict: (leak|flat|inconclusive)", done.stdout, re.MULTILINE)
    run = storage.load_run(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["epochs.csv", "meta.json", "samples.csv", "worker.log"]
    # and every epoch is a row with the harness's columns and the loop's metrics
    assert run.epochs["epoch"].tolist() == list(range(1, 9))
    assert run.metric_columns == ["loss", "kept_mib"]
    assert run.epochs["loss"].tolist() == pytest.approx([1 / e for e in range(1, 9)])
    assert (run.epochs["peak_rss_bytes"] >= run.epochs["rss_bytes"]).all()
    assert run.epochs["heap_bytes"].isna().all()
    # Python's blocks counted at epoch 1 and then at most every 10 ms (this loop's epochs are faster)
    counted = run.epochs.loc[run.epochs["py_blocks"].notna(), "elapsed_s"]
    assert counted.index[0] == 0 and (counted.diff().dropna() >= 0.01).all()
    assert (run.epochs["elapsed_s"].diff().dropna() > 0).all()
    assert len(run.samples) >= 1 and (run.samples["rss_bytes"] > 0).all()
    # and the memory follows the leak: +4 MiB per epoch with it, flat without it
    per_epoch = (run.epochs["rss_bytes"].iloc[-1] - run.epochs["rss_bytes"].iloc[0]) / 7
    if growing:
        assert 3.5 * MiB < per_epoch < 4.5 * MiB
    else:
        assert abs(per_epoch) < 0.25 * MiB
    # and meta.json describes the run
    meta = run.meta
    assert (meta["status"], meta["epochs_done"], meta["epochs_planned"], meta["leak"], meta["stop"]) == (
        "completed",
        8,
        8,
        leak,
        None,
    )
    assert meta["variant"] == loop("GrowLoop") and meta["config"]["epochs"] == 8
    assert meta["growth"]["verdict"] in ("leak", "flat", "inconclusive")
    assert meta["ended_at"] > meta["started_at"]
    assert meta["host"]["memory_total_bytes"] > 0 and meta["versions"]["python"].startswith("3.")


def test_a_user_module_on_the_import_path_runs_like_ours(tmp_path: Path) -> None:
    # GIVEN a module in the user's project directory, named as package.module:Class
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    (tmp_path / "myproject" / "train.py").write_text(
        "class Loop:\n"
        "    def __init__(self, config):\n        self.lr = config.learning_rate\n"
        "    def train_epoch(self, epoch):\n        return {'lr': self.lr, 'epoch_twice': 2.0 * epoch}\n"
    )
    # WHEN run from that directory with its own options
    done = cli(
        "run",
        "--variant",
        "myproject.train:Loop",
        "--epochs",
        "3",
        "--learning-rate",
        "0.5",
        "--seed",
        "4",
        cwd=tmp_path,
    )
    # THEN it is recorded like ours, with the options it was given
    assert done.returncode == 0, done.stderr
    run = storage.load_run(run_dir_of(done, tmp_path))
    assert run.epochs["lr"].tolist() == [0.5] * 3 and run.epochs["epoch_twice"].tolist() == [2.0, 4.0, 6.0]
    assert run.meta["seed"] == 4 and run.meta["run_id"].split("-")[1:4] == ["loop", "noleak", "s4"]


def test_print_noise_from_the_loop_does_not_touch_the_records(tmp_path: Path) -> None:
    # GIVEN a loop that prints record-like JSON, half lines and bytes to stdout and stderr
    # WHEN it runs
    done = cli("run", "--variant", loop("NoisyLoop"), "--epochs", "3", cwd=tmp_path)
    # THEN the records are exactly the loop's, and the noise is in worker.log, not on our terminal
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_of(done, tmp_path)
    run = storage.load_run(run_dir)
    assert run.epochs["epoch"].tolist() == [1, 2, 3] and run.epochs["loss"].tolist() == [1.0, 2.0, 3.0]
    log = (run_dir / "worker.log").read_text(errors="replace")
    assert log.count("training") == 3 and '{"type": "done"}' in log and "binary junk" in log
    assert "training" not in done.stdout + done.stderr


def test_trace_points_at_the_line_that_keeps_the_memory(tmp_path: Path) -> None:
    # GIVEN a loop that keeps a list of floats per epoch, allocated on a known line
    line = next(n for n, text in enumerate(LOOPS.read_text().splitlines(), 1) if "TRACE SITE" in text)
    # WHEN run with --trace
    done = cli("run", "--variant", loop("ListLeak"), "--leak", "hoard", "--epochs", "8", "--trace", cwd=tmp_path)
    # THEN the heap is recorded per epoch and trace.json charges the growth to that line
    assert done.returncode == 0, done.stderr
    run = storage.load_run(run_dir_of(done, tmp_path))
    heap = run.epochs["heap_bytes"]
    assert heap.notna().all() and heap.iloc[-1] - heap.iloc[0] > 7 * 400_000  # 20,000 floats: >= 480 KB per epoch
    trace = run.trace
    assert trace is not None
    assert (trace["baseline_epoch"], trace["final_epoch"], trace["final"], trace["frames"]) == (2, 8, True, 10)
    top = trace["sites"][0]
    assert (Path(top["file"]), top["line"]) == (LOOPS, line)
    assert top["count_diff"] >= 6 * 20_000 and top["size_diff"] >= 6 * 20_000 * 24
    harness_dir = str(Path(harness.__file__).parent)
    assert not any(site["file"].startswith(harness_dir) for site in trace["sites"])  # not the harness's own
    assert trace["keepers"][0]["chain"][-1].endswith("ListLeak.kept")  # kept in the loop's attribute
    assert {"type": "list", "count_diff": 6} in [{k: t[k] for k in ("type", "count_diff")} for t in trace["types"]]
    assert run.meta["trace"] is True


def test_trace_names_what_keeps_the_growth(tmp_path: Path) -> None:
    # GIVEN the seed's leak in miniature: one suspended generator per epoch, each keeping its work in a local
    line = next(n for n, text in enumerate(LOOPS.read_text().splitlines(), 1) if "# KEEPER" in text)
    # WHEN traced
    done = cli(
        "run", "--variant", loop("GeneratorLeak"), "--leak", "recursion", "--epochs", "6", "--trace", cwd=tmp_path
    )
    # THEN the top site's keeper is that local, at the line that assigns it, in the generator's function
    assert done.returncode == 0, done.stderr
    trace = storage.load_run(run_dir_of(done, tmp_path)).trace
    assert trace is not None
    keeper = trace["keepers"][0]
    assert (keeper["file"], keeper["line"]) == (trace["sites"][0]["file"], trace["sites"][0]["line"])
    holder = keeper["holder"]
    assert (Path(holder["file"]), holder["line"], holder["function"], holder["name"]) == (
        LOOPS,
        line,
        "GeneratorLeak._from",
        "work",
    )


def test_progress_line_is_drawn_on_a_terminal(tmp_path: Path) -> None:
    # GIVEN stderr on a terminal (a pseudo-terminal)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            harness_argv("run", "--variant", loop("SlowLoop"), "--epochs", "3"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        os.close(follower)
        out, _ = proc.communicate(timeout=60)
        screen = b""
        while True:  # the terminal keeps what was written until it is read
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(leader)
    # WHEN the run ends THEN a live line was redrawn in place with the epoch, RSS and metric
    assert proc.returncode == 0
    text = screen.decode(errors="replace")
    assert "\r\x1b[Kepoch 3/3 | RSS " in text and "| loss 3 |" in text
    assert "\r\x1b[Kepoch 1/3" in text or "\r\x1b[Kepoch 2/3" in text
    assert out.splitlines()[0] == "completed 3/3 epochs"


# -- runs stopped early --------------------------------------------------------------------------


def test_the_memory_cap_stops_a_fast_leak_and_keeps_its_epochs(tmp_path: Path) -> None:
    # GIVEN a loop that keeps 64 MiB per epoch and a 300 MiB cap
    cap = 300 * MiB
    # WHEN it runs for up to 100 epochs
    done = cli(
        "run",
        "--variant",
        loop("GrowLoop"),
        "--leak",
        "flood",
        "--epochs",
        "100",
        "--memory-cap",
        "300MiB",
        cwd=tmp_path,
    )
    # THEN it is stopped with exit code 3 and status memory_cap, at the epoch and RSS recorded in meta.json
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("memory_cap: stopped after epoch ")
    run = storage.load_run(run_dir_of(done, tmp_path))
    stop = run.meta["stop"]
    assert run.meta["status"] == "memory_cap" and stop["reason"] == "memory_cap"
    assert run.meta["memory_cap_bytes"] == cap and stop["rss_bytes"] > cap
    # and epochs.csv is intact up to the stop: consecutive whole rows, as many as meta says
    epochs = run.epochs
    assert 3 <= len(epochs) <= 10 and epochs["epoch"].tolist() == list(range(1, len(epochs) + 1))
    assert stop["epoch"] == run.meta["epochs_done"] == len(epochs)
    # (the heap and tracer_bytes are read only when traced; the tree's PSS and USS only after a budgeted reading)
    assert epochs.notna().drop(columns=["heap_bytes", "tracer_bytes", "tree_uss_bytes", "tree_pss_bytes"]).all().all()
    assert epochs["tree_pss_bytes"].notna().any()
    assert epochs["kept_mib"].tolist() == [64.0 * e for e in range(1, len(epochs) + 1)]
    # and the worker never got far past the cap (a few epochs at most, on a busy machine)
    assert run.samples["rss_bytes"].max() <= cap + 4 * 64 * MiB
    assert stop["exit_code"] == -signal.SIGKILL


def test_a_timeout_stops_the_run(tmp_path: Path) -> None:
    # GIVEN a loop of 0.2 s epochs and a 3 s timeout WHEN it runs for up to 100 epochs
    started = time.monotonic()
    done = cli("run", "--variant", loop("SlowLoop"), "--epochs", "100", "--timeout", "3", cwd=tmp_path)
    # THEN it ends with exit code 4 soon after the timeout, with what it recorded kept
    assert done.returncode == 4, done.stderr
    assert time.monotonic() - started < 20
    run = storage.load_run(run_dir_of(done, tmp_path))
    assert run.meta["status"] == "timeout" and run.meta["stop"]["message"] == "timed out after 3 s"
    assert 1 <= run.meta["epochs_done"] < 100 and len(run.epochs) == run.meta["epochs_done"]


@pytest.mark.parametrize(
    ("name", "epochs_done", "message", "exit_status", "in_log"),
    [
        (
            "FailingLoop",
            2,
            "training: ValueError: the loss went negative in epoch 3",
            1,
            "ValueError: the loss went negative",
        ),
        ("CrashingLoop", 1, "the worker exited with status 7", 7, "about to crash"),
        ("BadMetricsLoop", 0, "epoch 1: metric 'loss' must be a number, got 'low'", 1, "must be a number"),
    ],
)
def test_a_failing_worker_marks_the_run_failed_with_its_stderr(
    tmp_path: Path, name: str, epochs_done: int, message: str, exit_status: int, in_log: str
) -> None:
    # GIVEN a loop that raises, one whose process dies, one that returns a bad metric WHEN each runs
    done = cli("run", "--variant", loop(name), "--epochs", "5", cwd=tmp_path)
    # THEN exit code 5, status failed, with the worker's exit status and the last lines of its output
    assert done.returncode == 5
    assert f"failed: after epoch {epochs_done}/5: {message}" in done.stderr
    assert "last lines of worker.log:" in done.stderr and in_log in done.stderr
    run = storage.load_run(run_dir_of(done, tmp_path))
    stop = run.meta["stop"]
    assert (run.meta["status"], stop["reason"], stop["exit_code"], stop["message"]) == (
        "failed",
        "failed",
        exit_status,
        message,
    )
    assert any(in_log in line for line in stop["stderr_tail"])
    assert run.meta["epochs_done"] == len(run.epochs) == epochs_done


def _worker_of(parent: psutil.Process) -> list[psutil.Process]:
    return [child for child in parent.children(recursive=True) if "harness.worker" in " ".join(child.cmdline())]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_parent_stops_the_worker_and_keeps_the_files(tmp_path: Path, signum: int) -> None:
    # GIVEN a run of a slow loop that has recorded at least one epoch
    proc = subprocess.Popen(
        harness_argv("run", "--variant", loop("SlowLoop"), "--epochs", "500"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    epochs_csv: list[Path] = []
    while time.monotonic() < deadline:
        epochs_csv = list((tmp_path / "results").glob("*/epochs.csv"))
        if epochs_csv and epochs_csv[0].read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    workers = _worker_of(psutil.Process(proc.pid))
    assert len(workers) == 2  # the keeper and the trainer it forked
    # WHEN the parent gets Ctrl-C, SIGTERM, or SIGHUP (its terminal closed)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    # THEN exit code 130, status interrupted, the worker is gone and the files are kept
    assert proc.returncode == 130, err
    assert "interrupted: after epoch" in err and f"stopped by {signal.Signals(signum).name}" in err
    for worker in workers:
        worker.wait(timeout=10)  # raises if the worker is still alive
    run = storage.load_run(run_dir_of(subprocess.CompletedProcess([], 130, out, err), tmp_path))
    assert run.meta["status"] == "interrupted" and run.meta["ended_at"] is not None
    assert run.meta["epochs_done"] == len(run.epochs) >= 1 and len(run.samples) >= 1


# -- usage errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--variant", "nosuch"], "unknown variant 'nosuch'; expected a registered variant name"),
        (["--variant", loop("GrowLoop"), "--leak", "nope"], "has no leak 'nope'; accepted: grow, flood"),
        (["--variant", loop("SlowLoop"), "--leak", "grow"], "has no leaks; run it without --leak"),
        (["--variant", loop("NotALoop")], "is not a training loop"),
        (["--variant", loop("GrowLoop"), "--epochs", "0"], "epochs must be a positive integer, got 0"),
        (["--variant", loop("GrowLoop"), "--memory-cap", "12XB"], "invalid size '12XB': unknown unit 'XB'"),
        (["--variant", loop("GrowLoop"), "--results", "blocker/results"], "is not a directory"),
        (["--epochs", "3"], "a variant or a script is required: --variant VARIANT, --script PATH or -m MODULE"),
        (["--variant", loop("GrowLoop"), "--option", "threads"], "expected KEY=VALUE, got 'threads'"),
    ],
)
def test_usage_errors_print_one_line_exit_2_and_write_nothing(tmp_path: Path, args: list[str], fragment: str) -> None:
    # GIVEN a clean directory (with a file where a results directory would have to go)
    (tmp_path / "blocker").write_text("a file")
    # WHEN run is given a bad option, variant or leak
    done = cli("run", *args, cwd=tmp_path)
    # THEN one line on stderr names what is wrong, exit code 2, and nothing was created
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("leakbench: error: ")
    assert fragment in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_options_reach_the_loops_config(tmp_path: Path) -> None:
    # GIVEN a loop that keeps `kib` KiB per epoch, given as an option, with text and JSON values
    # WHEN run with --option twice and --fc-only
    done = cli(
        "run",
        "--variant",
        KNOWN_LEAK,
        "--leak",
        "known",
        "--epochs",
        "2",
        "--quiet",
        "--fc-only",
        "--option",
        "kib=256",
        "--option",
        "note=first try",
        cwd=tmp_path,
    )
    # THEN the config the loop was built with holds them, with their types
    assert done.returncode == 0, done.stderr
    meta = json.loads((run_dir_of(done, tmp_path) / "meta.json").read_text())
    assert meta["config"]["options"] == {"kib": 256, "note": "first try", "fc_only": True}


# -- list ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def variant_infos() -> list[VariantInfo]:
    """The registered variants as this process sees them (imports each once for the module)."""
    return list_variants()


def test_list_shows_every_registered_variant_with_its_leaks(variant_infos: list[VariantInfo]) -> None:
    # GIVEN the registry WHEN listed THEN each variant has a line: its description or why it is unavailable
    done = cli("list", cwd=Path.cwd())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= len(variant_infos)
    for info in variant_infos:
        (line,) = [text for text in lines if text.split(" ", 1)[0] == info.name]
        if info.available:
            assert info.description in line
            for leak, text in info.leaks.items():
                assert any(f"--leak {leak}" in row and text in row for row in lines)
        else:
            assert "unavailable: " in line


# -- every registered variant, with and without each leak --------------------------------------


@dataclass
class VariantRuns:
    """The registered variant's runs (leak or None -> run), or why it is unavailable here."""

    unavailable: str | None
    runs: dict[str | None, tuple[subprocess.CompletedProcess[str], Path]]


@pytest.fixture(scope="module")
def registered_runs(
    tmp_path_factory: pytest.TempPathFactory, variant_infos: list[VariantInfo]
) -> Iterator[dict[str, VariantRuns]]:
    """Two epochs of every available registered variant with and without each leak, run side by side."""
    cwd = tmp_path_factory.mktemp("registered")
    started: dict[tuple[str, str | None], subprocess.Popen[str]] = {}
    found: dict[str, VariantRuns] = {}
    for info in variant_infos:
        found[info.name] = VariantRuns(info.error, {})
        if not info.available:
            continue
        for leak in [None, *info.leaks]:
            args = ["run", "--variant", info.name, "--epochs", "2", *(["--leak", leak] if leak else [])]
            started[info.name, leak] = subprocess.Popen(
                harness_argv(*args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
    for (name, leak), proc in started.items():
        out, err = proc.communicate(timeout=600)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        found[name].runs[leak] = (done, run_dir_of(done, cwd) if proc.returncode == 0 else cwd)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", list(registered_variants()))
def test_every_registered_variant_runs_with_and_without_its_leaks(
    registered_runs: dict[str, VariantRuns], name: str
) -> None:
    # GIVEN a registered variant WHEN it ran two epochs with and without each of its leaks
    variant = registered_runs[name]
    if variant.unavailable is not None:
        pytest.skip(f"{name} is unavailable here: {variant.unavailable}")
    results: dict[str | None, Any] = {}
    for leak, (done, run_dir) in variant.runs.items():
        # THEN each completed and recorded both epochs with the seed's metrics
        assert done.returncode == 0, f"{name} --leak {leak}: {done.stderr}"
        run = storage.load_run(run_dir)
        assert (run.meta["variant"], run.meta["leak"], run.meta["status"]) == (name, leak, "completed")
        assert run.epochs["epoch"].tolist() == [1, 2]
        assert {"loss", "accuracy", "correct_prob"} <= set(run.metric_columns)
        results[leak] = run.epochs[["loss", "accuracy", "correct_prob"]].to_numpy()
    # and a leak changes memory only: the numbers are the same as without it
    for leak, values in results.items():
        assert (values == results[None]).all(), f"{name} --leak {leak} changed the metrics"
    assert None in results
