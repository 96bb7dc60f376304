"""List the registered variants, their leaks and a one-line description of each.

A variant whose module cannot be imported (torch when it is not installed) is
listed as unavailable, with the reason.
"""

from __future__ import annotations

import argparse

from harness.loops import list_variants


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``list`` takes no options."""


def run(args: argparse.Namespace) -> int:
    """Print each variant, then its leaks indented below it."""
    infos = list_variants()
    width = max((len(info.name) for info in infos), default=0) + 2
    for info in infos:
        if not info.available:
            print(f"{info.name:<{width}}unavailable: {info.error}")
            continue
        print(f"{info.name:<{width}}{info.description}")
        if not info.leaks:
            print(f"{'':<{width}}  no leaks")
        leak_width = max((len(name) for name in info.leaks), default=0) + 2
        for name, text in info.leaks.items():
            print(f"{'':<{width}}  --leak {name:<{leak_width}}{text}")
    return 0
