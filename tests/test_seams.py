"""The package's shape: one import package, a torch-free spec layer, no import cycles, small
functions, and no module reaching the project's folders by their top-level names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"bench": "bench", "tasks": "bench.tasks", "methods": "bench.methods",
           "reports": "bench.reports", "grids": "bench.grids"}  # fmt: skip
MAX_FUNCTION_LINES = 80
IGNORED = (".git", "build", "results", "*.egg-info", "__pycache__", ".*_cache", ".tox", ".venv")


def project_modules() -> dict[str, Path]:
    """Installed module name -> source file, for every module of the package."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def module_level_imports(path: Path) -> list[str]:
    """Modules imported at module level, `if TYPE_CHECKING:` blocks included, functions not."""
    names = []
    pending: list[ast.stmt] = list(ast.parse(path.read_text()).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.If | ast.Try | ast.With):
            pending += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                pending += handler.body
    return names


def test_the_import_graph_has_no_cycle():
    modules = project_modules()
    graph = {
        name: sorted({m for m in module_level_imports(path) if m in modules and m != name})
        for name, path in modules.items()
    }
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in graph[name]:
            if state.get(target) == "open":
                cycle = [*trail[trail.index(target) :], target] if target in trail else [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert graph["bench.cell"] and graph["bench.generation"]  # the scan sees real edges


def test_the_scan_reads_type_checking_imports_and_skips_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.cell import run_cell\n"
        "def f():\n    from bench.runner import run_cells\n"
    )
    assert sorted(module_level_imports(module)) == [
        "bench.cell", "bench.cell.run_cell", "typing", "typing.TYPE_CHECKING"
    ]  # fmt: skip


def test_no_module_imports_the_folders_by_their_top_level_names():
    """`tasks.e2e` beside `bench.tasks.e2e` would be a second module registering twice."""
    for name, path in project_modules().items():
        for module in module_level_imports(path):
            assert module.split(".")[0] not in set(FOLDERS) - {"bench"}, f"{name}: {module}"


def test_no_function_is_longer_than_80_lines():
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, path in project_modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long


def test_loading_a_grid_imports_neither_torch_nor_transformers():
    code = (
        "import sys; from bench.grid import expand, load_grid; spec = load_grid('mini')[0]; "
        "expand(spec); load_grid('cocktails'); "
        "print('torch' in sys.modules, 'transformers' in sys.modules, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_the_wheel_installs_one_package_named_bench(tmp_path):
    source = tmp_path / "source"  # a copy: no build/ left in the repository, none reused
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*IGNORED))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path / "dist")],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith("prefix_bench-")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"bench", wheel.name.split("-py")[0] + ".dist-info"}
    for expected in (
        "bench/tasks/e2e.py",
        "bench/methods/prefix/config.py",
        "bench/methods/prefix/model.py",
        "bench/reports/data/paper_results.yaml",
        "bench/grids/mini.yaml",
        "bench/data_sources.json",
    ):
        assert expected in names
    # Installed from the wheel alone (no source tree on the path), the subpackages resolve.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "import bench.tasks.e2e, bench.reports.paper; from bench.grid import load_grid;"
        "from bench.registry import METHODS; print(load_grid('mini')[0].name, "
        "METHODS.get('prefix').Settings().length, bench.tasks.e2e.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["mini", "10"] and str(target) in out.stdout
