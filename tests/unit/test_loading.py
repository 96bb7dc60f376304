"""Resolving --variant: registered names, package.module:Class, path/to/file.py:Class, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.loops
from harness import loops as loading
from harness.errors import UsageError
from tests.helpers import LOOPS


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A registry with one loadable test loop and one whose module needs a package that is not installed."""
    broken = tmp_path / "needs_missing.py"
    broken.write_text("import leakbench_no_such_dependency\n\nclass Loop:\n    def train_epoch(self, epoch): ...\n")
    entries = {"grow": f"{LOOPS}:GrowLoop", "optional": f"{broken}:Loop"}
    monkeypatch.setattr(harness.loops, "VARIANTS", entries)
    return entries


def test_registered_name_resolves_to_the_registry_entry(registry: dict[str, str]) -> None:
    # GIVEN a registry naming a test loop WHEN its name is resolved THEN that class comes back
    cls = loading.load_loop_class("grow", "grow")
    assert cls.__name__ == "GrowLoop"
    assert loading.class_leaks(cls) == {
        "grow": "keeps a 4 MiB bytearray from every epoch",
        "flood": "keeps 64 MiB from every epoch",
    }


def test_file_path_form_loads_the_class_under_a_private_module_name() -> None:
    # GIVEN path/to/file.py:Class WHEN resolved twice THEN the same class, from a module that is not "loops"
    first = loading.resolve_class(f"{LOOPS}:SlowLoop")
    second = loading.resolve_class(f"{LOOPS}:SlowLoop")
    assert first is second
    assert first.__module__.startswith("leakbench_user_loops_")


def test_two_files_with_the_same_name_do_not_collide(tmp_path: Path) -> None:
    # GIVEN two different loop.py files WHEN both are loaded THEN each keeps its own class
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "loop.py").write_text(
            f"class Loop:\n    WHO = {name!r}\n    def train_epoch(self, epoch): ...\n"
        )
    a = loading.load_loop_class(f"{tmp_path / 'a' / 'loop.py'}:Loop")
    b = loading.load_loop_class(f"{tmp_path / 'b' / 'loop.py'}:Loop")
    assert (a.WHO, b.WHO) == ("a", "b")


def test_module_form_imports_from_the_import_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a module on the import path (as a user's project directory is) WHEN package.module:Class is resolved
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "loops.py").write_text("class MyLoop:\n    def train_epoch(self, epoch):\n        return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # THEN the class is that module's
    cls = loading.load_loop_class("userpkg.loops:MyLoop")
    assert cls.__module__ == "userpkg.loops"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "no variant given"),
        ("nosuch", "unknown variant 'nosuch'; expected a registered variant name"),
        ("nosuch_pkg.module:Loop", "no module named 'nosuch_pkg'; expected a registered variant name"),
        ("collections:NoSuchThing", "'collections' has no attribute 'NoSuchThing'"),
        ("collections:OrderedDict", "is not a training loop: it has no train_epoch"),
        ("os:sep", "is not a class"),
        ("missing/loop.py:Loop", "no file 'missing/loop.py'"),
        ("loop.py:", "unknown variant 'loop.py:'"),
        (":Loop", "unknown variant ':Loop'"),
        (f"{LOOPS}:NotALoop", "is not a training loop"),
    ],
)
def test_bad_variants_are_refused_in_one_line_naming_the_problem(spec: str, fragment: str) -> None:
    # GIVEN a --variant that cannot be used WHEN it is loaded THEN one line says why
    with pytest.raises(UsageError) as caught:
        loading.load_loop_class(spec)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_file_whose_code_fails_names_the_exception(tmp_path: Path) -> None:
    # GIVEN a user file that raises while it is imported WHEN loaded THEN the exception's last line is reported
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('no GPU here')\n")
    with pytest.raises(UsageError, match=r"cannot load .*bad.py:Loop.*RuntimeError: no GPU here"):
        loading.load_loop_class(f"{bad}:Loop")


def test_a_missing_dependency_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an importable module that itself imports a missing package
    (tmp_path / "uses_missing.py").write_text("import leakbench_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # WHEN loaded THEN the message names the missing dependency, not the accepted forms
    with pytest.raises(UsageError) as caught:
        loading.load_loop_class("uses_missing:Loop")
    assert "No module named 'leakbench_absent_dependency'" in str(caught.value)
    assert "expected a registered" not in str(caught.value)


def test_leaks_are_checked_against_the_class() -> None:
    # GIVEN a loop with leaks and one without
    grow = loading.resolve_class(f"{LOOPS}:GrowLoop")
    slow = loading.resolve_class(f"{LOOPS}:SlowLoop")
    # WHEN leaks are checked THEN known ones pass, unknown ones list the accepted, leakless loops take none
    loading.check_leak(grow, "grow", "grow")
    loading.check_leak(slow, None, "slow")
    with pytest.raises(UsageError, match="has no leak 'nope'; accepted: grow, flood"):
        loading.check_leak(grow, "nope", "grow")
    with pytest.raises(UsageError, match="has no leaks; run it without --leak"):
        loading.check_leak(slow, "grow", "slow")


def test_list_variants_reports_unavailable_ones_with_the_reason(registry: dict[str, str]) -> None:
    # GIVEN a registry where one variant's module cannot be imported WHEN listed
    infos = {info.name: info for info in loading.list_variants()}
    # THEN both are listed, in order; the good one with description and leaks, the other with its reason
    assert list(infos) == ["grow", "optional"]
    assert infos["grow"].available and infos["grow"].description.startswith("test loop")
    assert set(infos["grow"].leaks) == {"grow", "flood"}
    assert not infos["optional"].available
    assert "No module named 'leakbench_no_such_dependency'" in (infos["optional"].error or "")
