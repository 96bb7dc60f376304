"""This machine as sweeps share it: which runs are going, timing runs alone, and the environment a run gets.

Every run a sweep starts holds a *seat* for as long as it lasts, whichever
sweep, thread or Dask worker started it: a file in a registry directory
(``$TMPDIR/leakbench-<uid>``, or ``$LEAKBENCH_MACHINE_DIR``) that it keeps
locked with ``flock``.  The kernel drops the lock when the holder dies, so a
seat whose file is not locked is stale and is removed by whoever sees it.  A
new seat lists the live ones (how many runs are going, and their memory caps)
and appends its name to each of their files; so when a run ends, the runs that
were going when it started and those that joined it later are exactly the runs
it shared the machine with, however short.

Timing runs have the machine to themselves: a seat also holds ``machine.lock``,
shared by ordinary runs and exclusively by a timing run, so a timing run waits
for every other run on the machine to end, and nothing starts beside it, even
from another sweep or another Dask worker on the same machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_VARIABLE = "LEAKBENCH_MACHINE_DIR"
# The variables a run inherits that change what it measures: thread counts (speed, and BLAS results in
# their last bits) and the allocator's (RSS).  Dask's nanny sets some of them in its workers; a run gets
# the sweep client's values instead, and meta.json records them.
PINNED_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_ARENA_MAX",
    "PYTHONHASHSEED",
)
SEAT_SUFFIX = ".seat"


def registry_dir() -> Path:
    """Where this user's seats live on this machine."""
    return Path(os.environ.get(REGISTRY_VARIABLE) or Path(tempfile.gettempdir()) / f"leakbench-{os.getuid()}")


def client_environment() -> dict[str, str | None]:
    """This process's values of the pinned variables (None: not set), to give every run."""
    return {name: os.environ.get(name) for name in PINNED_VARIABLES}


def run_environment(pinned: Mapping[str, str | None]) -> dict[str, str]:
    """This process's environment with the pinned variables as ``pinned`` says (unset where None)."""
    env = {name: value for name, value in os.environ.items() if name not in PINNED_VARIABLES}
    return env | {name: value for name, value in pinned.items() if value is not None}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, to two decimals."""
    return [round(value, 2) for value in os.getloadavg()]


@dataclass
class Seat:
    """A run's place on the machine while it runs."""

    name: str
    fd: int
    alongside: dict[str, int]  # the live seats when it took its place: name -> memory cap (bytes)
    joined: set[str] = field(default_factory=set)

    @property
    def alongside_caps_bytes(self) -> int:
        """The memory caps of the runs going when this one started."""
        return sum(self.alongside.values())

    def shared_with(self) -> int:
        """How many other runs were going at some time while this one held its seat."""
        size = os.fstat(self.fd).st_size
        lines = os.pread(self.fd, size, 0).decode(errors="replace").splitlines()[1:]
        return len(set(self.alongside) | {line.split(" ", 1)[-1] for line in lines if line.startswith("joined ")})


@contextlib.contextmanager
def seat(cap_bytes: int, exclusive: bool = False) -> Iterator[Seat]:
    """Hold a seat on this machine for a run capped at ``cap_bytes``; ``exclusive`` waits for the machine alone."""
    root = registry_dir()
    root.mkdir(parents=True, exist_ok=True)
    machine = os.open(root / "machine.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(machine, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Locked before it is visible under its name, so no one takes it for stale.
        tmp = root / f".{name}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_RDWR | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps({"cap_bytes": cap_bytes, "exclusive": exclusive}).encode() + b"\n")
            path = root / f"{name}{SEAT_SUFFIX}"
            os.rename(tmp, path)
            others = live_seats(root, exclude=name)
            for other in others:
                _append(root / f"{other}{SEAT_SUFFIX}", f"joined {name}\n")
            try:
                yield Seat(name, fd, others)
            finally:
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    finally:
        os.close(machine)


def live_seats(root: Path | None = None, exclude: str = "") -> dict[str, int]:
    """The seats held now (name -> memory cap); stale ones (no holder) are removed."""
    root = root or registry_dir()
    found: dict[str, int] = {}
    with contextlib.suppress(FileNotFoundError):
        for path in root.iterdir():
            name = path.name.removesuffix(SEAT_SUFFIX)
            if not path.name.endswith(SEAT_SUFFIX) or name == exclude:
                continue
            cap = _held(path)
            if cap is not None:
                found[name] = cap
    return found


def _held(path: Path) -> int | None:
    """The cap of a seat whose holder is alive; None (and the file removed) when it is stale or gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            first = os.pread(fd, 4096, 0).split(b"\n", 1)[0]
            try:
                return int(json.loads(first)["cap_bytes"])
            except (ValueError, KeyError, TypeError):
                return 0
        path.unlink(missing_ok=True)  # its holder died without removing it
        return None
    finally:
        os.close(fd)


def _append(path: Path, text: str) -> None:
    """Append a line to a seat's file; nothing when it has just gone."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
