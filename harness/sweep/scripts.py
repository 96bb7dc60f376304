"""Script groups of a sweep spec: ``scripts = [...]`` with their ``args``, each run as ``run --script``.

A ``[[runs]]`` table with ``scripts`` plans one run per script and argument
list::

    [[runs]]
    label = "my training script"
    scripts = ["train.py", "-m pkg.train"]     # paths as for --script, or "-m MODULE"
    args = ["--epochs", "30"]                  # one argument list, or a list of them: [["--lr", "0.1"], ["--lr", "1"]]
    window = 2.0                               # --window: judge per window of 2 s whatever the script marks
    memory_cap = "1GiB"                        # and timeout, trace, measure, label as for variants

The loop's keys (``variants``, ``leaks``, ``seeds``, ``epochs``, ``fc_only``,
``options``, ``optional``) do not apply to a script: its own arguments say
what it does.  A run is done already when a finished run has the same script,
arguments, tracing, window and memory cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.errors import UsageError
from harness.records import WINDOWS
from harness.scripts import DEFAULT_WINDOW_S, Script

LOOP_KEYS = ("variants", "leaks", "seeds", "epochs", "fc_only", "options", "optional")
SCRIPT_KEYS = ("scripts", "args", "window")


def parse_scripts(group: Mapping[str, Any], where: str) -> tuple[list[Script], float | None]:
    """The scripts x argument lists of a group, and its window; ``([], None)`` for a group of variants."""
    if "scripts" not in group:
        extra = [key for key in SCRIPT_KEYS if key in group]
        if extra:
            raise UsageError(f"{where}: {extra[0]} belongs to a group of scripts (scripts = [...])")
        return [], None
    mixed = [key for key in LOOP_KEYS if key in group]
    if mixed:
        raise UsageError(f"{where}: {mixed[0]} belongs to a loop, not to scripts: give the scripts' own args")
    names = group["scripts"]
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise UsageError(f'{where}: scripts must be a list of paths or "-m MODULE", got {group["scripts"]!r}')
    arg_lists = _arg_lists(group.get("args", []), where)
    window = group.get("window")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 < window < math.inf
    ):
        raise UsageError(f"{where}: window must be a positive number of seconds, got {window!r}")
    scripts = []
    for name in names:
        module = name[3:].strip() if name.startswith("-m ") else None
        for args in arg_lists:
            scripts.append(Script(module=module, args=args) if module else Script(path=name, args=args))
    return scripts, None if window is None else float(window)


def _arg_lists(value: Any, where: str) -> list[tuple[str, ...]]:
    """``args``: one list of strings, or a non-empty list of such lists (one run each)."""
    if isinstance(value, list) and all(isinstance(arg, str) for arg in value):
        return [tuple(value)]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(item, list) and all(isinstance(arg, str) for arg in item) for item in value)
    ):
        return [tuple(item) for item in value]
    raise UsageError(f"{where}: args must be a list of strings or a list of such lists, got {value!r}")


def script_argv(script: Script, window: float | None) -> list[str]:
    """The tail of a script run's ``harness run`` command line: ``[--window W] --script PATH -- ARGS``."""
    head = ["--window", f"{window:g}"] if window is not None else []
    target = ["--script", str(script.path)] if script.path is not None else ["-m", str(script.module)]
    return [*head, *target, "--", *script.args]


def script_matches(script: Script, window: float | None, meta: Mapping[str, Any]) -> bool:
    """Whether a stored run is of this script with these arguments and window."""
    if meta.get("script") != script.to_dict():
        return False
    if window is None:
        return meta.get("window_s") in (None, DEFAULT_WINDOW_S)
    return meta.get("epochs_from") == WINDOWS and meta.get("window_s") == window
