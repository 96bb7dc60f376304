"""A training script to run as ``python PATH ARGS`` or ``python -m MODULE ARGS`` would: what it is, and its check.

``run --script PATH [--] [ARGS ...]`` and ``run -m MODULE [--] [ARGS ...]``
record a script instead of a loop class.  :class:`Script` says which and with
what arguments; it is what meta.json keeps under ``script`` and what the worker
is sent.  :func:`check_script` refuses, before anything is written, a script
that cannot run: a missing file, a directory, a syntax error (the file is
compiled, never run), a module that cannot be found.  It imports nothing of a
path script; finding a module imports its parent packages, so like a loop's
check it runs in a throw-away worker.  Standard library only.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError

DEFAULT_WINDOW_S = 1.0  # a script that marks no epochs is judged per window of this many seconds (--window)


@dataclass(frozen=True)
class Script:
    """A script by path (``train.py``) or module (``pkg.train``), and the arguments it is given."""

    path: str | None = None
    module: str | None = None
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.path is None) == (self.module is None):
            raise UsageError("a script is a path (--script PATH) or a module (-m MODULE), exactly one of them")
        name = self.path if self.path is not None else self.module
        if not isinstance(name, str) or not name.strip():
            raise UsageError("--script needs a PATH" if self.module is None else "-m needs a MODULE")
        if isinstance(self.args, (str, bytes)) or not all(isinstance(arg, str) for arg in self.args):
            raise UsageError(f"a script's arguments must be a list of strings, got {self.args!r}")
        if self.path is not None:
            # As given, without "./" or "a/../": the name budgets and sweeps know the script by.
            object.__setattr__(self, "path", os.path.normpath(self.path))
        object.__setattr__(self, "args", tuple(self.args))

    @property
    def label(self) -> str:
        """How runs, reports and budgets name it: ``"train.py"`` or ``"-m pkg.train"``."""
        return self.path if self.path is not None else f"-m {self.module}"

    @property
    def stem(self) -> str:
        """A short name for run ids: ``"train"`` for ``path/to/train.py``, ``"pkg.train"`` for a module."""
        return Path(self.path).stem if self.path is not None else str(self.module)

    def command(self) -> list[str]:
        """The script's own command line, as ``run`` shows it: ``["train.py", "--lr", "0.1"]``."""
        target = [self.path] if self.path is not None else ["-m", str(self.module)]
        return [*target, *self.args]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: meta.json's ``script`` and the worker's job; :meth:`from_dict` reverses it."""
        return {"path": self.path, "module": self.module, "args": list(self.args)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Script:
        """A Script from :meth:`to_dict` output."""
        return cls(data.get("path"), data.get("module"), tuple(data.get("args") or ()))


def split_arguments(given: Sequence[str], rest: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """(target, args) from what follows ``--script``/``-m`` on a command line; one ``--`` after the target is dropped.

    ``given`` holds the target and the arguments argparse kept with it; ``rest``
    what came after a ``--`` (argparse keeps that apart, the ``--`` included).
    """
    if not given:
        raise UsageError("--script needs a PATH (or -m a MODULE), then the script's own arguments")
    target, args = given[0], list(given[1:])
    extra = list(rest)
    if not args and extra[:1] == ["--"]:
        extra = extra[1:]
    return target, tuple(args + extra)


def _compile_file(path: str) -> None:
    """Compile a script's file (never run it); UsageError saying why it cannot run."""
    file = Path(path)
    if not file.exists():
        raise UsageError(f"cannot run script {path!r}: no such file")
    if file.is_dir():
        raise UsageError(f"cannot run script {path!r}: it is a directory; give the script file inside it")
    try:
        source = file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot run script {path!r}: {exc.strerror or exc}") from None
    _compile(source, path, f"script {path!r}")


def _compile(source: bytes | str, filename: str, label: str) -> None:
    try:
        compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        raise UsageError(f"cannot run {label}: {type(exc).__name__}: {exc.msg}{where}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # null bytes, a bad encoding
        raise UsageError(f"cannot run {label}: {exc}") from None


def _find_module(name: str) -> None:
    """Find a module as ``python -m`` does (a package runs its ``__main__``) and compile it; UsageError if it cannot."""
    label = f"module {name!r}"
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            main = importlib.util.find_spec(f"{name}.__main__")
            if main is None:
                raise UsageError(f"cannot run {label}: it is a package without a __main__ module")
            spec = main
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a parent package's own code failed: the user's, in one line
        raise UsageError(f"cannot run {label}: {type(exc).__name__}: {exc}") from None
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot run {label}: no module named {name!r}")
    get_source = getattr(spec.loader, "get_source", None)
    try:
        source = get_source(spec.name) if callable(get_source) else None
    except (ImportError, OSError) as exc:
        raise UsageError(f"cannot run {label}: {exc}") from None
    if source is not None:
        _compile(source, spec.origin or name, label)


def check_script(script: Script) -> None:
    """UsageError when ``script`` cannot run: a missing file, a directory, a syntax error, an unknown module."""
    if script.path is not None:
        _compile_file(script.path)
    else:
        _find_module(str(script.module))
