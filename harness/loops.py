"""Find a training loop class from what the user typed, and check that it is one.

Three spellings are accepted for ``--variant``:

- a registered name (``lists``, ``numpy``; :data:`VARIANTS`);
- ``package.module:Class``, imported with :func:`importlib.import_module`;
- ``path/to/file.py:Class``, imported from that file under a module name of its
  own (``leakbench_user_<hash of the path>``), without touching ``sys.path``.

The functions ``run --lines`` profiles are named the same two ways,
``package.module:qualname`` or ``path/to/file.py:qualname`` (:func:`resolve_function`).

Importing runs the module's top-level code, so the run command does this in a
short-lived worker process (``python -m harness.worker --check``), never in the
parent that records the run.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.interface import RunConfig

FORMS = "a registered variant name ({names}), package.module:Class, or path/to/file.py:Class"

# The built-in variants, by import path: listing them imports nothing, an optional variant
# (torch, numba) only fails when it is chosen, and the harness never imports the variants
# package (the variants import the harness's interface, not the other way round).
VARIANTS: dict[str, str] = {
    "lists": "variants.lists:ListsCNN",
    "generators": "variants.generators:GeneratorsCNN",
    "numpy": "variants.numpy:BuffersCNN",
    # Optional, as torch below: it needs its extra (`pip install '.[numba]'`); everything else works without them.
    "numba": "variants.numba:NumbaCNN",
    # Forks data-loader worker processes (multiprocessing, no torch): its leaks live in those workers.
    "loader": "variants.loader:LoaderCNN",
    "torch": "variants.torch:TorchCNN",
}

# Optional variant -> the module it needs, which is also the name of its extra in pyproject.toml.
OPTIONAL: dict[str, str] = {"torch": "torch", "numba": "numba"}


def registered_variants() -> dict[str, str]:
    """The registry: name -> "module:Class" import path (read at call time, so tests can patch it)."""
    return dict(VARIANTS)


def accepted_forms() -> str:
    """The accepted spellings of --variant, naming the registered variants."""
    return FORMS.format(names=", ".join(registered_variants()) or "none")


def _exception_line(exc: BaseException) -> str:
    """The last line of a traceback: "ModuleNotFoundError: No module named 'torch'"."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def _import_module(name: str, label: str, suggest: bool) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # The module itself (or its package) is missing, rather than something it imports.
        if suggest and exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(
                f"cannot import {label}: no module named {exc.name!r}; expected {accepted_forms()}"
            ) from None
        raise UsageError(f"cannot import {label}: {_exception_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 -- the module's own top-level code failed: any error is the user's
        raise UsageError(f"cannot import {label}: {_exception_line(exc)}") from None


def _import_file(path_text: str, label: str) -> Any:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UsageError(f"cannot load {label}: no file {path_text!r}")
    resolved = path.resolve()
    # A name of its own per file, so two user files called loop.py do not collide.
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"leakbench_user_{resolved.stem.replace('-', '_')}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {label}: {path_text!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, as a normal import does, so dataclasses and pickle can find it.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 -- the file's top-level code failed: any error is the user's
        del sys.modules[module_name]
        raise UsageError(f"cannot load {label}: {_exception_line(exc)}") from None
    return module


def resolve_class(spec_text: str) -> type:
    """The class named by ``spec_text`` (any accepted form), imported; UsageError when it cannot be."""
    if not isinstance(spec_text, str) or not spec_text.strip():
        raise UsageError(f"no variant given; expected {accepted_forms()}")
    registry = registered_variants()
    registered = spec_text in registry
    target = registry.get(spec_text, spec_text)
    label = f"variant {spec_text!r} ({target})" if registered else repr(spec_text)
    module_text, colon, class_name = target.rpartition(":")
    if not colon or not module_text or not class_name:
        raise UsageError(f"unknown variant {spec_text!r}; expected {accepted_forms()}")
    if _is_path(module_text):
        module = _import_file(module_text, label)
    else:
        module = _import_module(module_text, label, suggest=not registered)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise UsageError(f"cannot load {label}: {module_text!r} has no attribute {class_name!r}")
    if not isinstance(cls, type):
        raise UsageError(f"{label} is not a class (it is a {type(cls).__name__})")
    return cls


def _is_path(module_text: str) -> bool:
    return module_text.endswith(".py") or "/" in module_text or "\\" in module_text


def resolve_function(spec_text: str) -> types.FunctionType:
    """The Python function named by ``module:qualname`` or ``path/file.py:qualname`` (``Class.method``).

    UsageError, one line naming ``spec_text``, when the module cannot be
    imported, the name does not exist, or it is not a Python function (a class,
    a builtin, a compiled kernel: nothing whose lines Python runs).
    """
    label = f"{spec_text!r} for --lines"
    module_text, colon, qualname = str(spec_text).rpartition(":")
    if not colon or not module_text or not qualname:
        raise UsageError(f"cannot profile {label}: expected package.module:function or path/file.py:Class.method")
    module = _import_file(module_text, label) if _is_path(module_text) else _import_module(module_text, label, False)
    found: Any = module
    where = module_text
    for part in qualname.split("."):
        # Static lookup: a method as the class holds it, not bound, and no property runs.
        found = inspect.getattr_static(found, part, None)
        if found is None:
            raise UsageError(f"cannot profile {label}: {where!r} has no attribute {part!r}")
        where = f"{where}:{part}" if where == module_text else f"{where}.{part}"
    function = python_function(found)
    if function is None:
        raise UsageError(f"cannot profile {label}: not a Python function (type {type(found).__name__})")
    return function


def python_function(found: Any) -> types.FunctionType | None:
    """The Python function behind ``found`` (a static or class method unwrapped, decorators too), else None."""
    if isinstance(found, (staticmethod, classmethod)):
        found = found.__func__
    found = inspect.unwrap(found) if callable(found) else found
    return found if isinstance(found, types.FunctionType) else None


def class_leaks(cls: type) -> dict[str, str]:
    """The class's LEAKS as {name: description}; {} when it declares none."""
    leaks = getattr(cls, "LEAKS", None)
    if leaks is None:
        return {}
    if not isinstance(leaks, Mapping):
        raise UsageError(f"{cls.__qualname__}.LEAKS must be a mapping of leak name to description")
    return {str(name): str(text) for name, text in leaks.items()}


def check_loop_class(cls: type, spec_text: str) -> None:
    """UsageError unless ``cls`` looks like a training loop (a callable ``train_epoch``)."""
    if not callable(getattr(cls, "train_epoch", None)):
        raise UsageError(
            f"{spec_text!r} is not a training loop: it has no train_epoch(epoch) method "
            "(see harness.interface.TrainingLoop)"
        )


def check_leak(cls: type, leak: str | None, spec_text: str) -> None:
    """UsageError unless ``leak`` is None or one of the class's LEAKS."""
    if leak is None:
        return
    leaks = class_leaks(cls)
    if not leaks:
        raise UsageError(f"variant {spec_text!r} has no leaks; run it without --leak")
    if leak not in leaks:
        raise UsageError(f"variant {spec_text!r} has no leak {leak!r}; accepted: {', '.join(leaks)}")


def load_loop_class(spec_text: str, leak: str | None = None, config: RunConfig | None = None) -> type:
    """Resolve ``spec_text`` and check it is a training loop that accepts ``leak`` (and ``config``, when given)."""
    cls = resolve_class(spec_text)
    check_loop_class(cls, spec_text)
    check_leak(cls, leak, spec_text)
    if config is not None:
        check_config(cls, config, spec_text)
    return cls


def check_config(cls: type, config: RunConfig, spec_text: str) -> None:
    """UsageError when the class's optional ``check_config(config)`` refuses the run's options."""
    judge = getattr(cls, "check_config", None)
    if not callable(judge):
        return
    try:
        judge(config)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 -- the loop's own check failed: the user's to fix, said in one line
        raise UsageError(f"{spec_text!r}: check_config raised {_exception_line(exc)}") from None


@dataclass(frozen=True)
class VariantInfo:
    """A registered variant as ``list`` shows it; ``error`` says why it is unavailable."""

    name: str
    target: str
    description: str
    leaks: Mapping[str, str]
    error: str | None = None

    @property
    def available(self) -> bool:
        """True when the variant's class could be imported."""
        return self.error is None


def describe_variant(name: str, target: str) -> VariantInfo:
    """Import one registered variant and read its DESCRIPTION and LEAKS, or say why it cannot be."""
    try:
        cls = resolve_class(name)
        check_loop_class(cls, name)
        leaks = class_leaks(cls)
    except UsageError as exc:
        return VariantInfo(name, target, "", {}, error=str(exc))
    return VariantInfo(name, target, str(getattr(cls, "DESCRIPTION", "")).strip(), leaks)


def list_variants() -> list[VariantInfo]:
    """Every registered variant, in registry order; unavailable ones carry their import error."""
    return [describe_variant(name, target) for name, target in registered_variants().items()]
