"""``run --script``: a training script run unchanged, as ``python PATH ARGS`` would, its epochs marked or timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import records, storage
from tests.helpers import FIXTURES, MIB, cli, run_dir_of

SCRIPTS = FIXTURES / "scripts"
MARKED = SCRIPTS / "marked_leak.py"
STEADY = SCRIPTS / "steady_leak.py"
AS_PYTHON = SCRIPTS / "as_python_would.py"
LOCAL = SCRIPTS / "local_leak.py"


def worker_log_json(run_dir: Path) -> dict[str, object]:
    """The first line of worker.log, which as_python_would.py writes as JSON."""
    return json.loads((run_dir / storage.WORKER_LOG).read_text().splitlines()[0])


def test_each_mark_is_an_epoch_row_judged_as_a_loops_epochs(tmp_path: Path) -> None:
    # GIVEN a script that keeps 512 KiB per epoch and marks 12 epochs with metrics
    # WHEN run with --script, its arguments after a --
    done = cli("run", "--script", MARKED, "--", "12", "512", cwd=tmp_path)
    # THEN it completes, one epoch row per mark with its metrics, and a leak of 512 KiB/epoch is found
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("completed: the script exited with status 0 after 12 epochs\nverdict: leak, +5")
    run = storage.load_run(run_dir_of(done, tmp_path))
    assert run.epochs["epoch"].tolist() == list(range(1, 13))
    assert run.metric_columns == ["loss", "epoch_number"] and run.epochs["epoch_number"].tolist() == list(range(1, 13))
    growth = run.meta["growth"]
    assert growth["verdict"] == "leak" and growth["per"] == "epoch"
    assert growth["bytes_per_epoch"] == pytest.approx(512 * 1024, rel=0.25)
    # AND meta.json says it was a script: no seed, no planned epochs, its epochs from marks
    meta = run.meta
    assert (meta["schema_version"], meta["variant"], meta["seed"], meta["epochs_planned"]) == (
        3,
        str(MARKED),
        None,
        None,
    )
    assert meta["script"] == {"path": str(MARKED), "module": None, "args": ["12", "512"]}
    assert (meta["epochs_from"], meta["epochs_done"], meta["config"]) == (records.MARKS, 12, {})
    assert run.path.name.split("-")[1:3] == ["marked", "leak"] and "-script-" in run.path.name


@pytest.mark.parametrize("policy", ["never", "always"])
def test_a_script_takes_the_garbage_collection_policy_it_is_given(tmp_path: Path, policy: str) -> None:
    # GIVEN a marked script, WHEN run with --gc-collect (before --script: what follows it is the script's)
    done = cli("run", "--gc-collect", policy, "--script", MARKED, "--", "4", "64", cwd=tmp_path)
    # THEN meta.json records that policy and what it did: a full collection per mark, or none
    assert done.returncode == 0, done.stderr
    gc = storage.load_run(run_dir_of(done, tmp_path)).meta["gc"]
    assert gc["policy"] == policy
    assert gc["collections"] == (4 if policy == "always" else 0)


def test_a_traced_script_shows_the_growth_its_function_kept_while_it_ran(tmp_path: Path) -> None:
    # GIVEN a script whose main() keeps 256 KiB of floats an epoch in a local list, freed when main() returns
    # WHEN it is run with --trace, then explained
    done = cli("run", "--trace", "--trace-frames", "1", "--script", LOCAL, "12", "256", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = storage.load_run(run_dir_of(done, tmp_path))
    explained = cli("explain", run.path, cwd=tmp_path)
    # THEN the final trace is the last one taken while it ran, not one taken after main() had returned:
    # its top site is the script's leaking line, held by main()'s local `history`
    trace = run.trace
    assert trace is not None and trace["final"] is True
    assert trace["baseline_epoch"] < trace["final_epoch"] <= 12
    top = trace["sites"][0]
    line = next(n for n, text in enumerate(LOCAL.read_text().splitlines(), 1) if "the leak" in text)
    assert (Path(top["file"]).name, top["line"]) == (LOCAL.name, line) and top["size_diff"] > MIB
    holder = trace["keepers"][0]["holder"]
    assert (holder["kind"], holder["function"], holder["name"]) == ("local", "main", "history")
    assert f"local_leak.py:{line}" in explained.stdout and "marks" not in explained.stderr


def test_the_script_runs_as_python_path_args_would(tmp_path: Path) -> None:
    # GIVEN a script that prints how it was run, given arguments without a --
    done = cli("run", "--script", AS_PYTHON, "hello", "--lr", "0.1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = worker_log_json(run_dir_of(done, tmp_path))
    # THEN it ran as __main__, with its own argv, its directory first on sys.path instead of the working directory
    assert seen == {
        "name": "__main__",
        "argv": [str(AS_PYTHON), "hello", "--lr", "0.1"],
        "path0": str(SCRIPTS),
        "cwd_on_path": False,
    }
    # AND a script that marks nothing is judged per window of its samples
    assert storage.load_run(run_dir_of(done, tmp_path)).meta["epochs_from"] == records.WINDOWS


def test_a_module_runs_as_python_m_would(tmp_path: Path) -> None:
    # GIVEN a package with a __main__ in the working directory
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(AS_PYTHON.read_text())
    # WHEN run with -m and arguments
    done = cli("run", "-m", "mypkg", "--", "--flag", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = worker_log_json(run_dir_of(done, tmp_path))
    # THEN it ran as __main__ with the module's file as argv[0] and the working directory first on sys.path
    assert seen["name"] == "__main__" and seen["argv"] == [str(package / "__main__.py"), "--flag"]
    assert seen["cwd_on_path"] is True
    assert storage.load_run(run_dir_of(done, tmp_path)).meta["variant"] == "-m mypkg"


def test_an_unmarked_steady_leak_is_a_leak_per_window(tmp_path: Path) -> None:
    # GIVEN a script without mark_epoch keeping 1 MiB a second for 8 s
    # WHEN run with windows of 1 s (the default)
    done = cli("run", "--script", STEADY, "--", "1", "8", cwd=tmp_path)
    # THEN the verdict is a leak per window, at 1 MiB per window within 25%
    assert done.returncode == 0, done.stderr
    assert "completed: the script exited with status 0 after " in done.stdout and " windows of 1 s" in done.stdout
    assert "verdict: leak, " in done.stdout and "MiB/window" in done.stdout
    run_dir = run_dir_of(done, tmp_path)
    run = storage.load_run(run_dir)
    assert run.meta["epochs_from"] == records.WINDOWS and run.meta["window_s"] == 1.0
    assert (run_dir / storage.EPOCHS).read_text() == ""  # the windows are read from samples.csv, never stored
    assert run.meta["growth"]["bytes_per_epoch"] == pytest.approx(MIB, rel=0.25)
    # AND explain and check say per window too
    explained = cli("explain", run_dir, cwd=tmp_path)
    assert "windows fitted" in explained.stdout and "MiB/window" in explained.stdout
    checked = cli("check", run_dir, "--max-growth", "64KiB", cwd=tmp_path)
    assert (
        checked.returncode == 1 and "MiB/window over " in checked.stdout and "budget 64.0 KiB/window" in checked.stdout
    )


def test_window_ignores_the_marks(tmp_path: Path) -> None:
    # GIVEN a script that marks its epochs WHEN run with --window
    done = cli("run", "--window", "0.5", "--script", MARKED, "--", "3", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_of(done, tmp_path)
    # THEN its epochs are windows of 0.5 s, no mark was recorded, and worker.log says why
    run = storage.load_run(run_dir)
    assert (run.meta["epochs_from"], run.meta["window_s"]) == (records.WINDOWS, 0.5)
    assert "--window given: mark_epoch calls are not recorded" in (run_dir / storage.WORKER_LOG).read_text()


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["exit", "3"], 3, "the script exited with status 3"),
        (["exit-text", "bad config"], 1, "the script exited with status 1"),
        (["raise"], 1, "running the script: ValueError: the script's own error"),
        (["mark-bad"], 1, "running the script: ValueError: mark_epoch: metric 'loss' must be a number, got 'not a"),
    ],
)
def test_a_script_that_fails_is_failed_with_its_status_and_last_lines(
    tmp_path: Path, args: list[str], exit_code: int, message: str
) -> None:
    # WHEN a script exits non-zero, raises, or marks a metric that is not a number
    done = cli("run", "--script", AS_PYTHON, *args, cwd=tmp_path)
    # THEN the run is failed (exit 5) with the script's own exit status and its last stderr lines kept
    assert done.returncode == 5, done.stderr
    assert done.stderr.splitlines()[0].startswith("failed: after 0 windows of 1 s: " + message)
    stop = storage.load_run(run_dir_of(done, tmp_path)).meta["stop"]
    assert (stop["reason"], stop["exit_code"]) == ("failed", exit_code) and stop["message"].startswith(message)
    expected_tail = {
        "exit": "leaving with a status of my own",
        "exit-text": "bad config",
        "raise": "ValueError: the script's own error",
        "mark-bad": "ValueError: mark_epoch: metric 'loss' must be a number, got 'not a number'",
    }[args[0]]
    assert expected_tail in stop["stderr_tail"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--script", "missing.py"], "cannot run script 'missing.py': no such file"),
        (["--script", "adir"], "cannot run script 'adir': it is a directory"),
        (["--script", "bad.py"], "cannot run script 'bad.py': SyntaxError: invalid syntax (line 2)"),
        (["--window", "0", "--script", "good.py"], "--window must be a positive number of seconds, got 0"),
        (["--window", "-1", "--script", "good.py"], "--window must be a positive number of seconds, got -1"),
        (["--window", "1", "--variant", "numpy"], "--window applies to a script"),
        (["--script"], "--script needs a PATH"),
        (["-m", "no_such_module_anywhere"], "cannot run module 'no_such_module_anywhere': no module named"),
        (["--epochs", "3", "--script", "good.py"], "--epochs belongs to a loop, not to a script"),
        (["--variant", "numpy", "--script", "good.py"], "--variant belongs to a loop, not to a script"),
        (["--variant", "numpy", "--", "x"], "unexpected arguments '-- x': only a script (--script PATH) takes them"),
        (["--trace", "--measure", "heap", "--window", "1", "--script", "good.py"], "measure heap needs marked epochs"),
    ],
)
def test_bad_script_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    # GIVEN a directory, a script with a syntax error on line 2 (that would write a file if it ran), a good script
    (tmp_path / "adir").mkdir()
    (tmp_path / "bad.py").write_text("open('ran', 'w').close()\ndef f(:\n    pass\n")
    (tmp_path / "good.py").write_text("open('ran', 'w').close()\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    # WHEN run is given it
    done = cli("run", *args, cwd=tmp_path)
    # THEN one line names what is wrong, exit 2, and nothing was written (nor did the script run)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("leakbench: error: ")
    assert fragment in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
