"""Entry point of ``python -m harness.worker``: parse the command line, become the keeper, then check or train.

Nothing of the user's is imported before the fork (:mod:`harness.worker.keeper`):
the keeper must never run training code, so the training side is imported in
the trainer only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn

from harness.worker import keeper
from harness.worker.process import limit_memory
from harness.worker.protocol import WORKER, Channel


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.worker",
        description="the worker process of leakbench: trains one loop and sends its records",
    )
    parser.add_argument("--fd", type=int, required=True, help="file descriptor of the record pipe")
    parser.add_argument("--lifeline", type=int, help="read end of a pipe that only the parent holds open")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--check", metavar="JSON", help='{"variant": ..., "leak": ...} or {"script": ...}: resolve and validate only'
    )
    mode.add_argument(
        "--job", metavar="JSON", help="the run: variant, config, trace_path, memory_limit_bytes, parent_pid"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of ``python -m harness.worker``."""
    args = _parse(argv)
    # Whole lines reach worker.log at once, so a worker killed at the memory cap leaves its last words.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    job = json.loads(args.check if args.check is not None else args.job)
    keeper.start(job.get("parent_pid"), args.lifeline, args.fd)  # returns in the trainer only
    channel = Channel(args.fd)
    if args.job is not None:
        channel.send(WORKER, pid=os.getpid())
    limit_memory(job.get("memory_limit_bytes"))
    # Imported here, after the fork: the keeper never loads the loop's code.
    if job.get("script") is not None:
        from harness.worker import script

        code = script.check(channel, job["script"]) if args.check is not None else script.run(channel, job)
    else:
        from harness.worker.train import check, run

        code = (
            check(channel, job["variant"], job.get("leak"), job.get("config"), job.get("lines"))
            if args.check is not None
            else run(channel, job)
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: a leaked heap can take seconds to free


if __name__ == "__main__":
    main()
