"""Memoised lazy values (thunks), the way the seed's Haskell held its parameters.

GHC overwrites a thunk with its value once it is evaluated, so what it was
built from can be collected.  ``Thunk(f, *inputs, keep_inputs=True)`` does not:
it memoises the value but keeps ``f`` and its inputs, and with them everything
the value was built from; that is the ``thunks`` leak of the generators variant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Thunk(Generic[T]):
    """``function(*inputs)``, computed on the first :meth:`force` and memoised."""

    __slots__ = ("__weakref__", "_forced", "_function", "_inputs", "_keep_inputs", "_value")

    def __init__(self, function: Callable[..., T], *inputs: Any, keep_inputs: bool = False) -> None:
        self._function: Callable[..., T] | None = function
        self._inputs: tuple[Any, ...] = inputs
        self._value: T | None = None
        self._forced = False
        self._keep_inputs = keep_inputs

    @classmethod
    def ready(cls, value: T) -> Thunk[T]:
        """An already evaluated thunk that refers to nothing else."""
        thunk: Thunk[T] = cls(_identity, value)
        thunk.force()
        return thunk

    @property
    def forced(self) -> bool:
        """Whether the value has been computed."""
        return self._forced

    @property
    def inputs(self) -> tuple[Any, ...]:
        """What the value was built from and is still reachable from here (empty once let go)."""
        return self._inputs

    def force(self) -> T:
        """The value, computing it on first use."""
        if not self._forced:
            assert self._function is not None
            self._value = self._function(*self._inputs)
            self._forced = True
            if not self._keep_inputs:
                # Like GHC's update of an evaluated thunk: the inputs can now be collected.
                self._function, self._inputs = None, ()
        return self._value  # type: ignore[return-value]


def _identity(value: T) -> T:
    """The function of a thunk that is born evaluated."""
    return value


def chain_length(thunk: Thunk[Any]) -> int:
    """How many thunks are reachable by following thunk inputs from ``thunk`` (itself included)."""
    length = 0
    current: Thunk[Any] | None = thunk
    while current is not None:
        length += 1
        current = next((value for value in current.inputs if isinstance(value, Thunk)), None)
    return length
