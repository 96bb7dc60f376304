"""Which line an allocation is charged to: the user's, not NumPy's or the stdlib's or the harness's.

An allocation is charged to the most recent frame of its traceback
that is the user's or variant's code, that is neither in the Python standard
library, nor in site-packages (our own ``variants`` package excepted, wherever
it is installed), nor in the harness.  When no such frame was
recorded (the traceback holds :data:`harness.worker.tracing.FRAMES` frames), the most recent frame
outside the stdlib and the harness is used, then the most recent frame.  This
is ``Snapshot.compare_to(..., "lineno")`` with the key moved from the allocating
line inside NumPy or the stdlib to the line in the loop that asked for it.
Allocations whose traceback holds a harness frame and otherwise only stdlib
frames are the harness's own bookkeeping (the tracer's baseline, the last record
sent) and are left out.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterable

# The harness package's root (this file is harness/worker/attribution.py): every frame below it is ours.
HARNESS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# Our variants are installed beside the harness, in site-packages after a plain `pip install .`:
# they count as the user's code, not as a third-party library.
VARIANTS_DIR = os.path.join(os.path.dirname(HARNESS_DIR.rstrip(os.sep)), "variants") + os.sep
STDLIB_DIRS = tuple(
    os.path.abspath(p) + os.sep for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_THIRD_PARTY_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def _is_stdlib(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap> and friends
        return True
    if any(marker in filename for marker in _THIRD_PARTY_MARKERS):
        return False  # site-packages lives under the stdlib directory
    return filename.startswith(STDLIB_DIRS)


def _is_third_party(filename: str) -> bool:
    return any(marker in filename for marker in _THIRD_PARTY_MARKERS) and not filename.startswith(VARIANTS_DIR)


def _is_harness(filename: str) -> bool:
    return filename.startswith(HARNESS_DIR)


def attribute(frames: Iterable[tuple[str, int]]) -> tuple[str, int]:
    """The (file, line) an allocation is charged to; ``frames`` are ordered most recent first."""
    frames = list(frames)
    for frame in frames:
        name = frame[0]
        if not _is_stdlib(name) and not _is_third_party(name) and not _is_harness(name):
            return frame
    for frame in frames:
        if not _is_stdlib(frame[0]) and not _is_harness(frame[0]):
            return frame
    return frames[0] if frames else ("<unknown>", 0)


def is_bookkeeping(frames: Iterable[tuple[str, int]]) -> bool:
    """True for the harness's own allocations: a harness frame, and nothing but the stdlib besides.

    A traceback of stdlib frames alone is kept: it may be the user's call into the
    stdlib, cut off at the frame limit before it reached the user's code.
    """
    names = [frame[0] for frame in frames]
    return any(_is_harness(name) for name in names) and all(_is_harness(name) or _is_stdlib(name) for name in names)


def type_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    if module in (None, "builtins"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"
