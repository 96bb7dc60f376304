"""Memory budgets: what a run may grow, from ``[tool.leakbench]`` in a pyproject.toml or from arguments.

One table serves both the pytest plugin and ``python -m harness check``::

    [tool.leakbench]                       # defaults for every run (all keys optional)
    max-growth = "64 KiB"                  # bytes per epoch, after warm-up
    max-peak = "1 GiB"                     # peak of the measure (the worker's RSS for rss and heap)
    measure = "rss"                        # rss, tree-pss, tree-uss or heap: the series judged

    [tool.leakbench.budgets.numpy]         # a run of variant "numpy" without a leak
    epochs = 200                           # how long the plugin runs it (check ignores this)
    max-growth = "16 KiB"

    [tool.leakbench.budgets."numpy:history"]   # the same variant with --leak history
    epochs = 12
    expect = "leak"                        # the check passes only when the leak is caught: by its verdict,
                                           # the memory cap, or going over the entry's own max-growth/max-peak

    [tool.leakbench.budgets.torch]
    options = { threads = 1 }              # variant options for the plugin's run (check ignores them)

A run of variant V with leak L takes the entry ``"V:L"`` (``"V"`` without a
leak), and the top-level defaults fill what the entry leaves out, except that
an entry expecting a leak inherits no growth or peak budget (one it gives itself
says which budget must catch the leak: a leak that grows and then stops, such as
copy-on-write pages copied into data-loader workers, is caught by its peak).  V is spelt as it
was given to ``run`` (a registered name, ``pkg.mod:Class`` or ``file.py:Class``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.records import DEFAULT_MEASURE, MEASURE_COLUMNS
from harness.sizes import parse_size

EXPECTS = ("flat", "leak")
MEASURES = tuple(MEASURE_COLUMNS)  # rss, tree-pss, tree-uss, heap
DEFAULT_EPOCHS = 30  # enough for the growth verdict on a loop that leaks a page or more per epoch
KEYS = {
    "max-growth": "max_growth",
    "max-peak": "max_peak",
    "expect": "expect",
    "epochs": "epochs",
    "warmup": "warmup",
    "measure": "measure",
    "options": "options",
}


@dataclass(frozen=True)
class Budget:
    """What one run may do; None means "not set here" so budgets can be layered with :meth:`over`."""

    # Sizes may be given as text ("64 KiB") and are stored as bytes.
    max_growth: int | None = None  # bytes per epoch
    max_peak: int | None = None  # bytes: peak of the measure (tree-pss, tree-uss), else the worker's peak RSS
    expect: str | None = None  # "flat" (default) or "leak"
    epochs: int | None = None
    warmup: int | None = None  # epochs to drop before the analysis; None: detected
    measure: str | None = None  # "rss" (default), "tree-pss", "tree-uss" or "heap"
    options: Mapping[str, Any] | None = None  # the loop's RunConfig options when the plugin runs it

    def __post_init__(self) -> None:
        for name in ("max_growth", "max_peak"):
            # TOML hands over text; callers with text of their own convert it with size_option().
            object.__setattr__(self, name, size_option(name.replace("_", "-"), getattr(self, name)))
        if self.expect is not None and self.expect not in EXPECTS:
            raise UsageError(f"invalid expect {self.expect!r}: expected one of {', '.join(EXPECTS)}")
        if self.measure is not None and self.measure not in MEASURES:
            raise UsageError(f"invalid measure {self.measure!r}: expected one of {', '.join(MEASURES)}")
        if self.epochs is not None and (not _is_int(self.epochs) or self.epochs < 1):
            raise UsageError(f"invalid epochs {self.epochs!r}: expected a positive integer")
        if self.warmup is not None and (not _is_int(self.warmup) or self.warmup < 0):
            raise UsageError(f"invalid warmup {self.warmup!r}: expected a non-negative integer of epochs")
        if self.options is not None:
            if not isinstance(self.options, Mapping) or not all(isinstance(k, str) for k in self.options):
                raise UsageError(f"invalid options {self.options!r}: expected a table of variant options")
            object.__setattr__(self, "options", dict(self.options))

    def over(self, base: Budget) -> Budget:
        """This budget with what it leaves unset taken from ``base``.

        An expected leak inherits no max-growth or max-peak: its own, when it
        has them, say which budget must catch it.
        """
        if self.expect == "leak":
            base = replace(base, max_growth=None, max_peak=None)
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{name: value for name, value in values.items() if value is not None})

    @property
    def expects_leak(self) -> bool:
        """True when the run is meant to leak (the check is that the leak is caught)."""
        return self.expect == "leak"

    @property
    def epochs_or_default(self) -> int:
        """Epochs to run: the budget's, or :data:`DEFAULT_EPOCHS`."""
        return self.epochs if self.epochs is not None else DEFAULT_EPOCHS

    @property
    def measure_or_default(self) -> str:
        """What to judge: the budget's measure, or "rss"."""
        return self.measure or DEFAULT_MEASURE


@dataclass(frozen=True)
class BudgetTable:
    """Top-level defaults and per-run entries, as read from one pyproject.toml (or empty)."""

    defaults: Budget = field(default_factory=Budget)
    entries: Mapping[str, Budget] = field(default_factory=dict)
    source: Path | None = None

    @staticmethod
    def key(variant: str, leak: str | None) -> str:
        """The entry name of a run: "numpy", or "numpy:history" for a leak."""
        return f"{variant}:{leak}" if leak else variant

    def has_entry(self, variant: str, leak: str | None) -> bool:
        """True when the table names this run explicitly."""
        return self.key(variant, leak) in self.entries

    def for_run(self, variant: str, leak: str | None) -> Budget:
        """The budget of a run of ``variant`` with ``leak``: its entry over the defaults."""
        entry = self.entries.get(self.key(variant, leak), Budget())
        return entry.over(self.defaults)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def size_option(key: str, value: int | str | None) -> int | None:
    """Bytes in a size option ("64 KiB" or an int), None when unset; UsageError naming ``key`` and quoting the value."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except UsageError as exc:
        raise UsageError(f"{key}: {exc}") from None


def budget_from_mapping(data: Mapping[str, Any], where: str) -> Budget:
    """A Budget from TOML keys (``max-growth`` ...); UsageError naming ``where`` and the bad key or value."""
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; accepted: {', '.join(KEYS)}")
    try:
        return Budget(**{KEYS[name]: value for name, value in data.items()})
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None


def parse_table(tool: Mapping[str, Any], source: Path | None = None) -> BudgetTable:
    """The BudgetTable in a ``[tool.leakbench]`` mapping; UsageError for a key or value it does not accept."""
    where = f"{source or 'pyproject.toml'} [tool.leakbench]"
    top = dict(tool)
    entries_data = top.pop("budgets", {})
    unknown = sorted(set(top) - set(KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; accepted: budgets, {', '.join(KEYS)}")
    defaults = budget_from_mapping(top, where)
    if defaults.expect == "leak":
        raise UsageError(f'{where}: expect = "leak" belongs in a budgets entry, not in the defaults')
    if not isinstance(entries_data, Mapping):
        raise UsageError(f"{where}: budgets must be a table of entries such as [tool.leakbench.budgets.numpy]")
    entries: dict[str, Budget] = {}
    for name, data in entries_data.items():
        entry_where = f'{source or "pyproject.toml"} [tool.leakbench.budgets."{name}"]'
        if not isinstance(data, Mapping):
            raise UsageError(f"{entry_where}: expected a table of keys ({', '.join(KEYS)}), got {data!r}")
        entries[name] = budget_from_mapping(data, entry_where)
    return BudgetTable(defaults, entries, source)


def load_budgets(path: str | Path | None, *, required: bool = False) -> BudgetTable:
    """The budgets in the pyproject.toml at ``path``; an empty table when there is none (UsageError if ``required``)."""
    if path is None:
        return BudgetTable()
    path = Path(path)
    if not path.is_file():
        if required:
            raise UsageError(f"no configuration file {str(path)!r}; expected a pyproject.toml with [tool.leakbench]")
        return BudgetTable()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    tool = document.get("tool", {}).get("leakbench")
    if tool is None:
        return BudgetTable(source=path)
    if not isinstance(tool, Mapping):
        raise UsageError(f"{path}: [tool.leakbench] must be a table")
    return parse_table(tool, path)
