"""The subcommands of ``python -m harness``, one module each, listed once in :data:`COMMAND_NAMES`.

A command module satisfies :class:`Command`: its docstring is its help (the
first line is the summary shown in ``python -m harness --help``), and it has
``add_arguments(parser)`` and ``run(args) -> int`` (the exit code).  Adding a
command is writing ``harness/commands/NAME.py`` and adding ``"NAME"`` below.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType
from typing import Protocol

COMMAND_NAMES: tuple[str, ...] = (
    "run",
    "list",
    "explain",
    "check",
    "sweep",
    "report",
    "compare",
    "bench",
    "export",
)


class Command(Protocol):
    """What every command module provides (modules satisfy it structurally)."""

    __doc__: str | None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's options to its sub-parser."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Do the command; return the process exit code (raise UsageError for bad input)."""
        ...


def load_commands() -> dict[str, ModuleType]:
    """Command name -> imported module, in :data:`COMMAND_NAMES` order."""
    return {name: importlib.import_module(f"harness.commands.{name}") for name in COMMAND_NAMES}
