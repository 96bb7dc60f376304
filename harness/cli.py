"""The command line: builds argparse from the command modules, turns user errors into one line.

``main(argv)`` returns the exit code: a command's own, 2 for a usage error (ours
or argparse's), 130 when interrupted before a command could handle it.  User
errors never show a traceback; a traceback means a bug in leakbench.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from harness.commands import load_commands
from harness.errors import UsageError

PROG = "python -m harness"


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line: "leakbench: error: ... (see --help)", exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"leakbench: error: {message} (see {self.prog} --help)\n")


def _summary(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def build_parser() -> argparse.ArgumentParser:
    """The parser with one sub-parser per command module."""
    parser = _Parser(
        prog=PROG, description="leakbench: find, reproduce and guard against memory growth in training loops."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, module in load_commands().items():
        sub = commands.add_parser(
            name,
            help=_summary(module.__doc__),
            description=(module.__doc__ or "").strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_command=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argparse error (2, already printed)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args._command.run(args))
    except UsageError as exc:
        print(f"leakbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("leakbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whatever read our output has gone (`| head`): stop quietly, as a command killed by SIGPIPE would.
        # Python flushes stdout again at exit: point it at /dev/null so that flush does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
