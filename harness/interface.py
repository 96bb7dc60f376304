"""The training interface: the only thing the harness knows about a training loop.

A training loop is a class constructed with a :class:`RunConfig` that trains one
epoch per call of ``train_epoch(epoch)`` and returns a mapping of metric names
to floats.  ``close()`` is optional, and so are:

- ``check_config(config)``, a classmethod raising :class:`~harness.errors.UsageError`
  for options the loop cannot run with: ``run`` calls it while checking the
  variant, before anything is written, so a bad ``--option`` is one line and
  exit 2 rather than a failed run;
- ``flops_per_epoch()``, the floating-point operations of one epoch, which
  ``bench`` sets against the machine's limit.

Two optional class attributes describe it to ``python -m harness list``:

- ``DESCRIPTION``: one line saying what the loop is;
- ``LEAKS``: a mapping of leak name to a one-line description; the harness only
  accepts ``--leak NAME`` for names listed here.

Example of a user's own loop::

    class MyLoop:
        def __init__(self, config: RunConfig) -> None:
            self.model = build_model(seed=config.seed)

        def train_epoch(self, epoch: int) -> dict[str, float]:
            loss = self.model.fit_one_epoch()
            return {"loss": loss}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from harness.errors import UsageError
from harness.jsonfile import is_finite_json

# The seed's hyper-parameters (../shared/seed/SUMMARY.md): 500 epochs planned,
# learning rate 0.1, the whole training set of 150 images as one batch.
SEED_EPOCHS = 500
SEED_LEARNING_RATE = 0.1
SEED_BATCH_SIZE = 150


@dataclass(frozen=True)
class RunConfig:
    """Everything a training loop is constructed with; checks its own fields."""

    seed: int = 0
    epochs: int = SEED_EPOCHS
    learning_rate: float = SEED_LEARNING_RATE
    batch_size: int = SEED_BATCH_SIZE
    leak: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {self.seed!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise UsageError(f"epochs must be a positive integer, got {self.epochs!r}")
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf:
            raise UsageError(f"learning rate must be a positive number, got {self.learning_rate!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if self.leak is not None and (not isinstance(self.leak, str) or not self.leak):
            raise UsageError(f"leak must be a non-empty name or None, got {self.leak!r}")
        if not isinstance(self.options, Mapping):
            raise UsageError(f"options must be a mapping, got {self.options!r}")
        if not is_finite_json(dict(self.options)):
            raise UsageError(
                "options must be JSON values (numbers, text, true/false, null, lists, tables) "
                f"without NaN or infinity, got {dict(self.options)!r}"[:300]
            )
        # Copy so a caller mutating its dict cannot change a frozen config.
        object.__setattr__(self, "options", dict(self.options))

    def option(self, name: str, default: Any = None) -> Any:
        """One variant option, or ``default`` when it is not set."""
        return self.options.get(name, default)

    @property
    def fc_only(self) -> bool:
        """The seed's second column: only the fully connected layers learn."""
        return bool(self.options.get("fc_only", False))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reverses it."""
        return asdict(self) | {"options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build a config from :meth:`to_dict` output, refusing unknown keys."""
        known = {"seed", "epochs", "learning_rate", "batch_size", "leak", "options"}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return cls(**dict(data))


@runtime_checkable
class TrainingLoop(Protocol):
    """What every variant implements, and what a user's own loop must implement."""

    def __init__(self, config: RunConfig) -> None: ...

    def train_epoch(self, epoch: int) -> Mapping[str, float]:
        """Train one epoch (``epoch`` counts from 1) and return its metrics."""
        ...
