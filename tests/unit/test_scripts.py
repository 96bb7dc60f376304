"""A script as a target: its check (compiled, never run), its command line, and mark_epoch outside the harness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import harness
from harness.errors import UsageError
from harness.scripts import Script, check_script, marks, split_arguments


def test_mark_epoch_outside_the_harness_does_nothing_and_checks_nothing() -> None:
    # GIVEN no hook (a script run as `python train.py`) WHEN it marks epochs, even with odd metrics
    # THEN nothing happens and nothing is raised
    assert marks._hook is None
    assert harness.mark_epoch() is None
    assert harness.mark_epoch(loss="not a number", accuracy=object()) is None


def test_mark_epoch_hands_its_metrics_to_the_hook() -> None:
    # GIVEN a hook installed, as the worker does
    seen: list[dict[str, object]] = []
    marks.install_hook(seen.append)
    try:
        # WHEN a script marks two epochs
        harness.mark_epoch(loss=0.5)
        harness.mark_epoch(loss=0.25, accuracy=0.9)
    finally:
        marks.install_hook(None)
    # THEN each call's metrics reach it, as a dict
    assert seen == [{"loss": 0.5}, {"loss": 0.25, "accuracy": 0.9}]
    assert marks._hook is None


def test_a_script_is_named_by_its_path_as_given_or_by_its_module() -> None:
    # GIVEN scripts by path (with ./ and ..) and by module
    by_path = Script(path="./examples/../examples/train.py", args=("--lr", "0.1"))
    by_module = Script(module="pkg.train", args=["-x"])  # type: ignore[arg-type]
    # THEN budgets and reports know them by a clean path, or by "-m MODULE"
    assert by_path.label == "examples/train.py" and by_path.stem == "train"
    assert by_path.command() == ["examples/train.py", "--lr", "0.1"]
    assert by_module.label == "-m pkg.train" and by_module.args == ("-x",)
    assert Script.from_dict(by_path.to_dict()) == by_path


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of them"),
        ({"path": "a.py", "module": "a"}, "exactly one of them"),
        ({"path": " "}, "--script needs a PATH"),
        ({"module": ""}, "-m needs a MODULE"),
        ({"path": "a.py", "args": "--lr 0.1"}, "must be a list of strings"),
    ],
)
def test_a_script_refuses_what_cannot_name_one(fields: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Script(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "rest", "expected"),
    [
        (["train.py"], [], ("train.py", ())),
        (["train.py", "--lr", "0.1"], [], ("train.py", ("--lr", "0.1"))),
        (["train.py"], ["--", "--lr", "0.1"], ("train.py", ("--lr", "0.1"))),  # run --script train.py -- --lr 0.1
        (["train.py"], ["--"], ("train.py", ())),
        (["train.py", "a"], ["--", "b"], ("train.py", ("a", "--", "b"))),  # a later -- is the script's own
        (["train.py"], ["--", "--", "x"], ("train.py", ("--", "x"))),
    ],
)
def test_everything_after_the_script_is_its_own_and_one_separator_is_dropped(
    given: list[str], rest: list[str], expected: tuple[str, tuple[str, ...]]
) -> None:
    assert split_arguments(given, rest) == expected


def test_split_arguments_needs_a_target() -> None:
    with pytest.raises(UsageError, match="--script needs a PATH"):
        split_arguments([], ["--", "x"])


def test_check_script_compiles_a_file_without_running_it(tmp_path: Path) -> None:
    # GIVEN a script whose top-level code would leave a trace if it ran
    script = tmp_path / "train.py"
    witness = tmp_path / "ran"
    script.write_text(f"open({str(witness)!r}, 'w').close()\n")
    # WHEN it is checked THEN it passes and did not run
    check_script(Script(path=str(script)))
    assert not witness.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.py", "no such file"),
        (lambda d: d, "it is a directory"),
        (lambda d: _write(d / "bad.py", "def f(:\n    pass\n"), "SyntaxError: invalid syntax (line 1)"),
        (lambda d: _write(d / "tabs.py", "if True:\n\tx = 1\n        y = 2\n"), "line 3"),
        (lambda d: _write(d / "nul.py", "x = 1\0\n"), "null bytes"),
    ],
)
def test_check_script_refuses_a_script_that_cannot_run(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(UsageError, match="cannot run script") as caught:
        check_script(Script(path=str(path)))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_check_script_finds_a_module_as_python_m_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a package with a __main__, a plain module, a package without __main__, and a module with a typo
    _write(tmp_path / "pkg" / "__init__.py", "")
    _write(tmp_path / "pkg" / "__main__.py", "print('main')\n")
    _write(tmp_path / "plain.py", "x = 1\n")
    _write(tmp_path / "nomain" / "__init__.py", "")
    _write(tmp_path / "typo.py", "x = = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # THEN the first two can run, the others are refused in one line each
    check_script(Script(module="pkg"))
    check_script(Script(module="plain"))
    with pytest.raises(UsageError, match="a package without a __main__ module"):
        check_script(Script(module="nomain"))
    with pytest.raises(UsageError, match="SyntaxError"):
        check_script(Script(module="typo"))
    with pytest.raises(UsageError, match="no module named 'nosuch_module_here'"):
        check_script(Script(module="nosuch_module_here"))
    with pytest.raises(UsageError, match=r"cannot run module 'nosuch_pkg\.sub'"):
        check_script(Script(module="nosuch_pkg.sub"))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_trainers_hook_sends_its_marks_and_ignores_those_of_a_child_it_forks() -> None:
    # GIVEN the trainer's hook, sending into a list
    from harness.worker.script import Marks

    sent: list[dict[str, float]] = []

    class Sender:
        t0 = 0.0

        def send(self, metrics: dict[str, float], started: float, ended: float) -> None:
            sent.append(metrics)

    class Stop:
        in_epoch, requested = True, False

    hook = Marks(Sender(), Stop())  # type: ignore[arg-type]
    # WHEN a child forked after it marks an epoch, and then the trainer does
    child = os.fork()
    if child == 0:
        hook({"loss": 2.0})
        os._exit(len(sent))  # the number of records the child's hook sent
    _, status = os.waitpid(child, 0)
    hook({"loss": 1.0})
    # THEN the child sent nothing and the trainer its one record
    assert os.waitstatus_to_exitcode(status) == 0
    assert sent == [{"loss": 1.0}]
