"""Sweep groups of training scripts: ``scripts = [...]`` with ``args``, each run as ``run --script``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.scripts import Script
from harness.sweep.spec import parse_spec


def test_scripts_times_argument_lists_become_script_runs() -> None:
    # GIVEN a group of two scripts, two argument lists, a window and a cap
    spec = parse_spec(
        {
            "runs": [
                {
                    "label": "mine",
                    "scripts": ["train.py", "-m pkg.train"],
                    "args": [["--lr", "0.1"], ["--lr", "1"]],
                    "window": 2,
                    "memory_cap": "1GiB",
                }
            ]
        },
        "s",
    )
    # THEN four runs, each named by its script
    assert [run.describe() for run in spec.runs] == [
        "train.py --lr 0.1",
        "train.py --lr 1",
        "-m pkg.train --lr 0.1",
        "-m pkg.train --lr 1",
    ]
    first, third = spec.runs[0], spec.runs[2]
    assert first.variant == "train.py" and first.script == Script(path="train.py", args=("--lr", "0.1"))
    # AND each is `run ... --script PATH -- ARGS`, the script last, with no loop options
    argv = first.argv(Path("out"))
    assert argv[:4] == [sys.executable, "-m", "harness", "run"]
    assert argv[argv.index("--window") :] == ["--window", "2", "--script", "train.py", "--", "--lr", "0.1"]
    assert "--memory-cap" in argv and not {"--variant", "--epochs", "--seed"} & set(argv)
    assert third.argv(Path("out"))[-5:] == ["-m", "pkg.train", "--", "--lr", "0.1"]


def test_a_script_run_is_done_when_a_finished_run_has_its_script_arguments_and_window() -> None:
    # GIVEN a planned script run with one argument list
    (planned,) = parse_spec({"runs": [{"scripts": ["train.py"], "args": ["--lr", "0.1"]}]}, "s").runs
    meta = {
        "variant": "train.py",
        "script": {"path": "train.py", "module": None, "args": ["--lr", "0.1"]},
        "epochs_from": "marks",
        "window_s": 1.0,
        "trace": False,
    }
    # THEN a stored run of the same script and arguments matches; other arguments, tracing or a window do not
    assert planned.matches(meta)
    assert not planned.matches(meta | {"script": meta["script"] | {"args": ["--lr", "1"]}})
    assert not planned.matches(meta | {"trace": True})
    assert not planned.matches(meta | {"window_s": 5.0, "epochs_from": "windows"})
    # AND a loop's run of a variant named like it does not match, nor the script a loop's plan
    loop_meta = {"variant": "train.py", "leak": None, "seed": 0, "epochs_planned": 1, "trace": False, "config": {}}
    assert not planned.matches(loop_meta)
    (loop_plan,) = parse_spec({"runs": [{"variants": ["numpy"], "epochs": 1}]}, "s").runs
    assert not loop_plan.matches(meta | {"variant": "numpy"})


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"scripts": ["train.py"], "epochs": 3}, "epochs belongs to a loop, not to scripts"),
        ({"scripts": ["train.py"], "variants": ["numpy"]}, "variants belongs to a loop"),
        ({"variants": ["numpy"], "args": ["--lr", "1"]}, "args belongs to a group of scripts"),
        ({"scripts": []}, "scripts must be a list of paths"),
        ({"scripts": ["train.py"], "args": "--lr 1"}, "args must be a list of strings or a list of such lists"),
        ({"scripts": ["train.py"], "args": [["--lr"], 1]}, "args must be a list of strings"),
        ({"scripts": ["train.py"], "window": 0}, "window must be a positive number of seconds, got 0"),
    ],
)
def test_a_bad_script_group_is_refused_when_the_spec_is_read(group: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_spec({"runs": [group]}, "bad")
