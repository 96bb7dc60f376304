"""Which line an allocation is charged to: the innermost frame of the user's code, never NumPy's, the stdlib's or ours.

An allocation is charged to the most recent frame of its traceback that is the
user's or a variant's code: neither the Python standard library (``<frozen
...>`` modules included), nor site-packages (our own ``variants`` package
excepted, wherever it is installed), nor the harness.  ``np.full`` allocates
inside ``numpy/_core/numeric.py``; the line to show is the loop's line that
called it.  When the recorded traceback holds no such frame (tracemalloc kept
too few), the allocation is charged to the marker site
``("<no user frame within N frames>", 0)``, never to a library's line: the
tracer (:mod:`harness.worker.tracing`) then keeps more frames when such a site
is among the growing ones (:func:`needs_deeper`).

Allocations whose traceback holds a harness frame and no user frame are the
harness's own bookkeeping and are left out.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterable, Sequence

# The harness package's root (this file is harness/worker/heap/attribution.py): every frame below it is ours.
HARNESS_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep
# Our variants are installed beside the harness, in site-packages after a plain `pip install .`:
# they count as the user's code, not as a third-party library.
VARIANTS_DIR = os.path.join(os.path.dirname(HARNESS_DIR.rstrip(os.sep)), "variants") + os.sep
STDLIB_DIRS = tuple(
    os.path.abspath(p) + os.sep for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_THIRD_PARTY_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)
NO_USER_FRAME = "<no user frame within {} frames>"
# A growing site worth deepening for: at least this much growth between two trace points.
DEEPEN_MIN_BYTES = 64 * 1024

Frame = tuple[str, int]


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


def is_user(filename: str) -> bool:
    """The user's or our variants' code: not the stdlib, site-packages or the harness."""
    return not (_is_stdlib(filename) or _is_third_party(filename) or _is_harness(filename))


def no_user_frame(frames_kept: int) -> Frame:
    """The marker site of allocations whose recorded traceback reaches no user frame."""
    return NO_USER_FRAME.format(frames_kept), 0


def is_marker(filename: str) -> bool:
    """True for :func:`no_user_frame`'s file name."""
    return filename.startswith("<no user frame within ")


def attribute(frames: Sequence[Frame], frames_kept: int | None = None) -> Frame:
    """The (file, line) an allocation is charged to; ``frames`` most recent first, as tracemalloc keeps them."""
    for frame in frames:
        if is_user(frame[0]):
            return frame[0], frame[1]
    return no_user_frame(frames_kept if frames_kept is not None else len(frames))


def display_stack(frames: Sequence[Frame], depth: int) -> tuple[Frame, ...]:
    """``depth`` frames from the innermost user frame outwards (from the most recent one when none is a user's)."""
    start = next((i for i, frame in enumerate(frames) if is_user(frame[0])), 0)
    return tuple((name, int(line)) for name, line in frames[start : start + max(1, depth)])


def is_bookkeeping(frames: Iterable[Frame]) -> bool:
    """True for the harness's own allocations: a harness frame, and no user frame.

    A traceback of stdlib or third-party frames alone is kept (as the marker
    site): it may be the user's call into a library, cut off at the frame limit.
    """
    names = [frame[0] for frame in frames]
    return any(_is_harness(name) for name in names) and not any(is_user(name) for name in names)


def needs_deeper(sites: Sequence[tuple[str, int, int]], top: int = 3) -> bool:
    """Whether the marker site is among the ``top`` growing sites ((file, line, bytes grown), largest first)."""
    return any(is_marker(file) and grown >= DEEPEN_MIN_BYTES for file, _, grown in sites[:top])


def type_name(cls: type) -> str:
    """ "list", "numpy.ndarray", "pkg.module.Class": how an object's type is named in traces."""
    module = getattr(cls, "__module__", None)
    if module in (None, "builtins"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"
