"""One planned run of a sweep: its parameters, the ``harness run`` command line, and how a stored run is matched.

A planned run is identified by the parameters that make its recording what it
is (variant, leak, seed, epochs, model, tracing, options, and the spec's memory
cap when it sets one): :meth:`PlannedRun.matches` finds it among stored runs and
:meth:`PlannedRun.key` names its claim (:mod:`harness.sweep.claims`).  The label,
the measure and ``timing`` only say how it is run or judged.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.scripts import Script
from harness.sizes import parse_size
from harness.sweep.scripts import script_argv, script_matches


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep, as the parameters of ``python -m harness run``."""

    variant: str
    leak: str | None
    seed: int
    epochs: int
    fc_only: bool
    memory_cap: str | None = None
    timeout: float | None = None
    trace: bool = False
    label: str = ""
    options: tuple[tuple[str, str], ...] = ()  # (key, JSON value): hashable, so repeated runs are found
    measure: str | None = None  # --measure; not part of matches(): the recording is the same
    timing: bool = False  # its speed counts: it has the machine to itself (not part of matches())
    script: Script | None = None  # a script's run (variant is then its label; seed 0 and epochs 1 mean nothing)
    window: float | None = None  # --window, for a script

    @property
    def alone(self) -> bool:
        """Whether it has the machine to itself: a timing run, or one judged on its tree's PSS."""
        # PSS divides each shared page among every process mapping it (libpython, numpy's libraries), so a run
        # starting or ending beside it steps its series: seen, a flat loader judged inconclusive at --jobs 2.
        return self.timing or self.measure == "tree-pss"

    def argv(self, results_dir: Path, memory_cap: str | None = None) -> list[str]:
        """The command line that performs this run, with this interpreter; ``memory_cap`` when the spec sets none."""
        argv = [sys.executable, "-m", "harness", "run"]
        if self.script is None:
            argv += ["--variant", self.variant, "--epochs", str(self.epochs), "--seed", str(self.seed)]
        argv += ["--quiet", "--results", str(results_dir)]
        if self.leak:
            argv += ["--leak", self.leak]
        if self.fc_only:
            argv.append("--fc-only")
        cap = self.memory_cap if self.memory_cap is not None else memory_cap
        if cap is not None:
            argv += ["--memory-cap", cap]
        if self.timeout is not None:
            argv += ["--timeout", f"{self.timeout:g}"]
        if self.trace:
            argv.append("--trace")
        for key, value in self.options:
            argv += ["--option", f"{key}={value}"]
        if self.measure is not None:
            argv += ["--measure", self.measure]
        if self.script is not None:
            argv += script_argv(self.script, self.window)  # last: everything after the script is its own
        return argv

    def describe(self) -> str:
        """``"numpy fc-only history s3, 500 epochs"``; a script's command line: ``"train.py --lr 0.1"``."""
        if self.script is not None:
            return " ".join(shlex.quote(part) for part in self.script.command()) + (" traced" if self.trace else "")
        parts = [self.variant] + (["fc-only"] if self.fc_only else []) + ([self.leak] if self.leak else [])
        return f"{' '.join(parts)} s{self.seed}, {self.epochs} epochs" + (" traced" if self.trace else "")

    def key(self) -> str:
        """A short stable name of what this run records (the parameters :meth:`matches` compares)."""
        identity = [self.variant, self.leak, self.seed, self.epochs, self.fc_only, self.trace, self.options]
        if self.script is not None:  # a script is its command line and how its epochs are counted
            identity += [list(self.script.command()), self.window]
        identity.append(None if self.memory_cap is None else parse_size(self.memory_cap))
        digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]
        return f"s{self.seed}-{digest}"

    def matches(self, meta: Mapping[str, Any]) -> bool:
        """Whether a stored run's metadata has this run's parameters (and its memory cap, when one is set)."""
        options = (meta.get("config") or {}).get("options") or {}
        if self.memory_cap is not None and meta.get("memory_cap_bytes") != parse_size(self.memory_cap):
            return False
        if self.script is not None or meta.get("script") is not None:
            same = self.script is not None and script_matches(self.script, self.window, meta)
            return same and bool(meta.get("trace", False)) == self.trace
        return (
            meta.get("variant") == self.variant
            and (meta.get("leak") or None) == self.leak
            and meta.get("seed") == self.seed
            and meta.get("epochs_planned") == self.epochs
            and bool(options.get("fc_only", False)) == self.fc_only
            and bool(meta.get("trace", False)) == self.trace
            and {k: v for k, v in options.items() if k != "fc_only"}
            == {key: json.loads(value) for key, value in self.options}
        )
