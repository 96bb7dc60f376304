"""The package layout holds: stages import downwards only, text output never loads matplotlib, the worker stays light.

The import graph is read with ``ast`` from the source (every ``import`` and
``from ... import``, including those inside functions), so a lazy import
cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from harness.worker.heap import attribution

ROOT = Path(harness.__file__).resolve().parent.parent

# The stages of a run's data, lowest first.  A module may import its own package and any lower
# layer, never a higher one, and never a sibling package of its own layer (the small shared modules
# of the foundation, layer 0, may use each other).
LAYERS: list[set[str]] = [
    {
        "harness.errors",
        "harness.interface",
        "harness.records",
        "harness.sizes",
        "harness.formatting",
        "harness.jsonfile",
        "harness.loops",
        "harness.sysinfo",
        "harness.scripts",
    },
    {"harness.storage", "harness.worker"},
    {"harness.growth"},
    {"harness.recording", "harness.report"},
    {"harness.guard", "harness.sweep", "harness.bench"},
    {"harness.commands", "harness.pytest_plugin"},
    {"harness.cli"},
    {"harness.__main__", "harness"},
]
# What the variants may use of the harness: the interface a user's loop uses too.
VARIANTS_MAY_IMPORT = {"harness.interface", "harness.errors", "harness.loops"}


def unit_of(module: str) -> str:
    """The layer unit a module belongs to: its top-level harness package or module ("harness.worker")."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "harness" and len(parts) > 1 else parts[0]


def layer_of(unit: str) -> int:
    return next(index for index, units in enumerate(LAYERS) if unit in units)


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module_name(path).split(".")
                package = package[: len(package) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join([*package, base] if base else package)
            found.append((node.lineno, base))
            # `from harness import records` imports the module harness.records
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base in ("harness", "variants")]
    return found


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_harness_module_belongs_to_a_layer() -> None:
    # GIVEN every module of the harness WHEN its unit is looked up THEN it is in exactly one layer
    units = {unit_of(module_name(path)) for path in python_files("harness")}
    listed = set().union(*LAYERS)
    assert units - listed == set(), "add the new module or package to LAYERS"
    assert sum(len(layer) for layer in LAYERS) == len(listed)


def test_stages_import_only_downwards() -> None:
    # GIVEN the import graph of the harness WHEN every edge is checked THEN none goes up or sideways
    upward = []
    for path in python_files("harness"):
        mine = unit_of(module_name(path))
        for line, target in imports_of(path):
            if not target.startswith("harness."):
                continue
            theirs = unit_of(target)
            if theirs == mine or theirs == "harness":
                continue
            if layer_of(theirs) > layer_of(mine) or layer_of(theirs) == layer_of(mine) > 0:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target} ({theirs})")
    assert upward == []


def test_harness_never_imports_the_variants_and_the_variants_only_the_interface() -> None:
    # GIVEN both packages' imports THEN harness names variants only as import paths (strings), and the
    # variants use of the harness only what a user's loop uses
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in python_files("harness")
        for line, target in imports_of(path)
        if target == "variants" or target.startswith("variants.")
    ]
    wrong += [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in python_files("variants")
        for line, target in imports_of(path)
        if target.startswith("harness") and target not in VARIANTS_MAY_IMPORT
    ]
    assert wrong == []


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    # GIVEN a storage module that imports the report (upwards) WHEN its imports are read
    fake = ROOT / "harness" / "storage" / "_probe_upward.py"
    fake.write_text("from harness.report import explain_text\n")
    try:
        edges = imports_of(fake)
    finally:
        fake.unlink()
    # THEN the edge is there and ranks upwards
    assert (1, "harness.report") in edges
    assert layer_of(unit_of("harness.report")) > layer_of(unit_of(module_name(fake)))


def loaded_after(statement: str) -> set[str]:
    """Top-level packages in sys.modules after running ``statement`` in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import harness.report.explain, harness.report.compare, harness.report.writers",
        "import harness.commands.explain, harness.commands.compare, harness.commands.check",
        "import harness.cli; harness.cli.build_parser()",
    ],
)
def test_text_output_never_loads_matplotlib(statement: str) -> None:
    # WHEN the text reports and the command line load THEN matplotlib does not
    assert "matplotlib" not in loaded_after(statement)


def test_the_worker_loads_neither_pandas_nor_matplotlib() -> None:
    # WHEN the worker's modules load (what `python -m harness.worker` imports before the loop)
    loaded = loaded_after(
        "import harness.worker.__main__, harness.worker.train, harness.worker.tracing, harness.worker.lines"
    )
    # THEN the analysis libraries stay out of the process whose memory is measured
    assert {"pandas", "matplotlib"} & loaded == set()


def test_paths_computed_from_file_name_the_package_roots() -> None:
    # GIVEN the directories attribution uses to tell our frames from the user's
    # THEN they are the harness package and the variants package, wherever the modules sit below them
    ours, variants = attribution.HARNESS_DIR, attribution.VARIANTS_DIR
    assert ours == str(ROOT / "harness") + os.sep
    assert variants == str(ROOT / "variants") + os.sep
    # AND frames classify as before the move: a recording frame is the harness's, a variant's is the user's
    recording = str(ROOT / "harness" / "recording" / "execute.py")
    variant = str(ROOT / "variants" / "lists" / "model.py")
    assert attribution.is_bookkeeping([(recording, 1)])
    assert attribution.attribute([(recording, 1), (variant, 2)]) == (variant, 2)


def test_sysinfo_finds_the_project_checkout() -> None:
    # GIVEN this checkout (a git repository) WHEN sysinfo looks for the commit THEN it finds one
    from harness import sysinfo

    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    commit = sysinfo.git_commit()
    assert commit is not None and len(commit) == 40


MAX_MODULE_LINES = 300
MAX_FOLDER_MODULES = 13  # "about a dozen": a folder past it wants a subpackage


def test_modules_stay_small_and_folders_readable() -> None:
    # GIVEN every module of both packages THEN none is over 300 lines and no folder holds more than about 12
    long = [
        f"{path.relative_to(ROOT)}: {count} lines"
        for package in ("harness", "variants")
        for path in python_files(package)
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert long == []
    folders: dict[Path, int] = {}
    for package in ("harness", "variants"):
        for path in python_files(package):
            folders[path.parent] = folders.get(path.parent, 0) + 1
    crowded = [f"{folder.relative_to(ROOT)}: {n}" for folder, n in folders.items() if n > MAX_FOLDER_MODULES]
    assert crowded == []
