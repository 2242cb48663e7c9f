"""The house's plan, checked: packages by job, data flowing one way, Ray and MLflow each behind
one package, no import circles, files and functions small enough to read in one sitting, and
the code formatted by ruff."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "slotsweep"
# Each part of the package by layer: a module may import its own layer and the ones below.
LAYERS = {
    "slotsweep": 0,  # __init__: the version only
    "slotsweep.registry": 0,
    "slotsweep.config": 0,
    "slotsweep.seeding": 0,
    "slotsweep.nn": 1,
    "slotsweep.models": 1,
    "slotsweep.data": 1,
    "slotsweep.train": 2,
    "slotsweep.study": 3,
    "slotsweep.preflight": 4,
    "slotsweep.analysis": 4,
    "slotsweep.report": 5,
    "slotsweep.tracking": 6,
    "slotsweep.launch": 7,
    "slotsweep.cli": 8,
    "slotsweep.__main__": 9,
}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside a function, TYPE_CHECKING included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            # `from slotsweep.cli import study` imports the module slotsweep.cli.study
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(name, path) if m in modules and m != name}
    return graph


def _owner(module: str) -> str | None:
    """The part of LAYERS a module belongs to (the package's own `__init__` is `slotsweep`; a
    new module at the root belongs to none until it is given a layer)."""
    parts = [p for p in LAYERS if module == p or (p != "slotsweep" and module.startswith(p + "."))]
    return max(parts, key=len) if parts else None


def _layer(module: str) -> int:
    return LAYERS[_owner(module)]


def _third_party(prefix: str) -> set[str]:
    """Modules of slotsweep that import the package `prefix` (ray, mlflow)."""
    return {
        name
        for name, path in _modules().items()
        if any(m == prefix or m.startswith(prefix + ".") for m in _imports(name, path))
    }


def test_every_module_has_a_layer():
    assert [name for name in _modules() if _owner(name) is None] == []


def test_no_arrow_points_up():
    """Data flows one way: study file -> groups -> Tune trial -> trainer -> MLflow -> report."""
    upward = [
        f"{a} -> {b}"
        for a, targets in _graph().items()
        for b in sorted(targets)
        if _layer(b) > _layer(a)
    ]
    assert upward == []


def test_no_import_circles():
    graph, cycles = _graph(), []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_only_launch_imports_ray_and_only_tracking_imports_mlflow():
    assert {m.split(".")[1] for m in _third_party("ray")} == {"launch"}
    assert {m.split(".")[1] for m in _third_party("mlflow")} == {"tracking"}


def test_the_library_train_and_report_run_without_ray_and_mlflow():
    """Importing every module below `tracking` loads neither Ray nor MLflow."""
    below = [name for name in _modules() if _layer(name) < LAYERS["slotsweep.tracking"]]
    code = (
        "import importlib, sys\n"
        f"for name in {below!r}:\n    importlib.import_module(name)\n"
        "print(sorted(m for m in ('ray', 'mlflow', 'optuna') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_modules_and_functions_stay_small():
    big_modules, big_functions = [], []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            big_modules.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big_functions.append(f"{name}.{node.name}: {length} lines")
    assert big_modules == [] and big_functions == []


def _ruff() -> list[str]:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    return [found]


def test_the_code_is_formatted_and_linted_by_ruff():
    folders = ["slotsweep", "tests", "bench", "setup.py"]
    formatted = subprocess.run(
        [*_ruff(), "format", "--check", *folders], cwd=ROOT, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    linted = subprocess.run([*_ruff(), "check", *folders], cwd=ROOT, capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr
