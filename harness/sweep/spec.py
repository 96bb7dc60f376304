"""Sweep specs: a TOML file of variants x leaks x seeds x options, checked and expanded into planned runs.

Spec format (every key of a ``[[runs]]`` table but ``variants`` is optional)::

    name = "seed"                      # optional; default: the file's stem
    description = "one line"           # optional

    [[runs]]
    label = "the seed's table"         # shown in the progress lines
    variants = ["numpy"]
    leaks = ["none", "history"]        # "none" = the fixed default; default ["none"]
    seeds = 10                         # a count (seeds 0..9) or a list [0, 3]; default [0]
    epochs = 500                       # default 500, the seed's
    fc_only = [false, true]            # a bool or a list of them; default false
    memory_cap = "1GiB"                # passed to --memory-cap (any run of the group)
    timeout = 600                      # seconds, passed to --timeout
    trace = false                      # --trace
    measure = "tree-pss"               # --measure: the series the verdict judges (default rss)
    optional = false                   # true: skip the group when its variant cannot be imported
    options = { threads = 1 }          # variant options, passed as --option KEY=VALUE
    timing = false                     # true: its speed counts, so each run has the machine to itself

A table may list training scripts instead of variants (``scripts`` and ``args``,
each run as ``run --script``): see :mod:`harness.sweep.scripts`.

A spec's name is a name, not a path (it names the results directory and the
manifest): letters, digits, ``.``, ``_`` and ``-``, at most 100 characters.
"""

from __future__ import annotations

import importlib
import importlib.resources
import itertools
import json
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.interface import SEED_EPOCHS
from harness.jsonfile import is_finite_json
from harness.loops import VARIANTS
from harness.records import MEASURE_COLUMNS, NO_LEAK
from harness.sizes import parse_size
from harness.sweep.planned import PlannedRun
from harness.sweep.scripts import SCRIPT_KEYS, parse_scripts

# The keys of a [[runs]] table, as in the module docstring.
RUN_KEYS = {"label", "variants", "leaks", "seeds", "epochs", "fc_only", "memory_cap", "timeout", "trace", "measure"}
RUN_KEYS |= {"optional", "options", "timing", *SCRIPT_KEYS}
SPEC_KEYS = {"name", "description", "runs"}
# Bounds, checked before anything is planned: a typo such as seeds = 100000000 must not allocate gigabytes.
MAX_SEEDS = 10_000
MAX_RUNS = 10_000
# A spec's name becomes a directory and a file name: a name, never a path.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,100}")


@dataclass(frozen=True)
class Spec:
    """A parsed sweep spec: its name, description and planned runs in order."""

    name: str
    description: str
    runs: tuple[PlannedRun, ...]
    unavailable: tuple[str, ...] = ()  # optional variants left out because they do not import here


def bundled_specs() -> list[str]:
    """Names of the specs shipped in harness/specs."""
    folder = importlib.resources.files("harness") / "specs"
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".toml"))


def load_spec(name_or_path: str) -> Spec:
    """A spec from a TOML file, or a bundled spec by name (``seed``); UsageError naming what is wrong."""
    path = Path(name_or_path)
    if path.is_file():
        text, default_name, origin = _read_text(path), path.stem, str(path)
    elif name_or_path in bundled_specs():
        resource = importlib.resources.files("harness") / "specs" / f"{name_or_path}.toml"
        text, default_name, origin = (
            resource.read_text(encoding="utf-8"),
            name_or_path,
            f"bundled spec {name_or_path!r}",
        )
    else:
        raise UsageError(
            f"no sweep spec {name_or_path!r}: give a TOML file or a bundled spec name ({', '.join(bundled_specs())})"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{origin} is not valid TOML: {exc}") from None
    return parse_spec(data, default_name, origin)


def _read_text(path: Path) -> str:
    """A spec file's text; UsageError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read sweep spec {str(path)!r}: {exc}") from None


def parse_spec(data: Mapping[str, Any], default_name: str, origin: str = "spec") -> Spec:
    """Check a spec's tables and expand them into planned runs (variants x leaks x seeds x fc_only)."""
    unknown = set(data) - SPEC_KEYS
    if unknown:
        raise UsageError(
            f"{origin}: unknown keys {', '.join(sorted(unknown))}; accepted: {', '.join(sorted(SPEC_KEYS))}"
        )
    groups = data.get("runs")
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        raise UsageError(f"{origin}: needs at least one [[runs]] table")
    planned: list[PlannedRun] = []
    unavailable: list[str] = []
    for index, group in enumerate(groups, start=1):
        planned.extend(_expand(group, f"{origin}, [[runs]] #{index}", unavailable))
        if len(planned) > MAX_RUNS:
            raise UsageError(f"{origin}: plans {len(planned):,} runs or more; a spec may plan at most {MAX_RUNS:,}")
    # The same run listed twice in a spec is run once.
    unique = list(dict.fromkeys(planned))
    return Spec(
        check_name(data.get("name", default_name), origin, given="name" in data),
        str(data.get("description", "")),
        tuple(unique),
        tuple(dict.fromkeys(unavailable)),
    )


def check_name(name: Any, origin: str, given: bool = True) -> str:
    """The spec's name if it is a name (NAME_PATTERN, not "." or ".."); UsageError quoting it otherwise."""
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name) and name not in (".", ".."):
        return name
    shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
    what = f"name {shown}" if given else f'name {shown} (from its file name; set name = "..." in it)'
    raise UsageError(f"{origin}: the {what} must be 1-100 letters, digits, '.', '_' or '-': a name, not a path")


def _expand(group: Mapping[str, Any], where: str, unavailable: list[str]) -> Iterator[PlannedRun]:
    """The planned runs of one [[runs]] table."""
    unknown = set(group) - RUN_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown keys {', '.join(sorted(unknown))}; accepted: {', '.join(sorted(RUN_KEYS))}")
    scripts, window = parse_scripts(group, where)
    variants = [script.label for script in scripts] or _strings(group.get("variants"), "variants", where, required=True)
    leaks = [None if leak == NO_LEAK else leak for leak in _strings(group.get("leaks", [NO_LEAK]), "leaks", where)]
    seeds = _seeds(group.get("seeds", [0]), where)
    epochs = group.get("epochs", SEED_EPOCHS)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UsageError(f"{where}: epochs must be a positive integer, got {epochs!r}")
    fc_only = group.get("fc_only", False)
    fc_values = fc_only if isinstance(fc_only, list) else [fc_only]
    if not fc_values or not all(isinstance(v, bool) for v in fc_values):
        raise UsageError(f"{where}: fc_only must be true, false or a list of them, got {fc_only!r}")
    memory_cap = group.get("memory_cap")
    if memory_cap is not None:
        # Refuse a bad size now, not at the 20th run.
        if isinstance(memory_cap, bool) or not isinstance(memory_cap, (int, str)) or parse_size(memory_cap) <= 0:
            raise UsageError(f'{where}: memory_cap must be a size above 0 such as "512MiB", got {memory_cap!r}')
        memory_cap = str(memory_cap)
    timeout = group.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf
    ):
        raise UsageError(f"{where}: timeout must be a positive number of seconds, got {timeout!r}")
    trace, optional, timing = (group.get(key, False) for key in ("trace", "optional", "timing"))
    if not all(isinstance(value, bool) for value in (trace, optional, timing)):
        raise UsageError(f"{where}: trace, optional and timing must be true or false")
    if optional:
        unavailable.extend(v for v in variants if not variant_available(v))
        variants = [v for v in variants if v not in unavailable]
    label = str(group.get("label", ""))
    options = _options(group.get("options", {}), where)
    count = len(variants) * len(leaks) * len(fc_values) * len(seeds)
    if count > MAX_RUNS:
        raise UsageError(f"{where}: plans {count:,} runs; a spec may plan at most {MAX_RUNS:,}")
    measure = group.get("measure")
    if measure is not None and measure not in MEASURE_COLUMNS:
        raise UsageError(f"{where}: measure must be one of {', '.join(MEASURE_COLUMNS)}, got {measure!r}")
    for script in scripts:  # seed 0, 1 epoch: a script has neither, and the ETA counts its runs
        yield PlannedRun(
            script.label, None, 0, 1, False, memory_cap, timeout, trace, label, (), measure, timing, script, window
        )
    for variant, leak, fc, seed in itertools.product(variants, leaks, fc_values, seeds) if not scripts else ():
        yield PlannedRun(variant, leak, seed, epochs, fc, memory_cap, timeout, trace, label, options, measure, timing)


def _options(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """A table of variant options as sorted (key, JSON value) pairs; fc_only has its own key."""
    if not isinstance(value, Mapping) or "fc_only" in value:
        raise UsageError(
            f"{where}: options must be a table of variant options (fc_only has its own key), got {value!r}"
        )
    if not is_finite_json(dict(value)):
        raise UsageError(
            f"{where}: options must be numbers, text, true/false, lists or tables (no dates, NaN or infinity), "
            f"got {value!r}"[:300]
        )
    return tuple(sorted((str(key), json.dumps(item)) for key, item in value.items()))


def _strings(value: Any, key: str, where: str, required: bool = False) -> list[str]:
    """A non-empty list of non-empty strings."""
    if value is None and required:
        raise UsageError(f"{where}: {key} is required (a list of names)")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where}: {key} must be a list of names, got {value!r}")
    return list(value)


def _seeds(value: Any, where: str) -> list[int]:
    """Seeds as a count (0..n-1) or a list of non-negative integers, at most MAX_SEEDS of them."""
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_SEEDS:
        raise UsageError(f"{where}: seeds = {value:,} is more than the {MAX_SEEDS:,} a spec may ask for")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return list(range(value))
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        return list(dict.fromkeys(value))
    raise UsageError(f"{where}: seeds must be a positive count or a list of non-negative integers, got {value!r}")


def variant_available(name: str) -> bool:
    """Whether a registered variant's module imports here (an optional one may lack its extra)."""
    target = VARIANTS.get(name)
    if target is None:
        return True  # a user's import path: let `run` judge it
    try:
        importlib.import_module(target.partition(":")[0])
    except ImportError:
        return False
    return True
