"""Training scripts run as they are: :func:`~harness.scripts.marks.mark_epoch` and the :class:`Script` target.

``mark_epoch`` (:mod:`~harness.scripts.marks`) is what ``from harness import
mark_epoch`` imports in a script that may never be run by the harness, so this
package stays light: :class:`Script`, :func:`check_script` and the rest
of :mod:`~harness.scripts.target` load on first use.  Standard library only.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.scripts.target import DEFAULT_WINDOW_S, Script, check_script, split_arguments

__all__ = ["DEFAULT_WINDOW_S", "Script", "check_script", "split_arguments"]


def __getattr__(name: str) -> Any:
    """The names of :mod:`~harness.scripts.target`, imported when first asked for."""
    if name in __all__:
        return getattr(import_module("harness.scripts.target"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
