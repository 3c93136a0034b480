"""The package's shape: one import package in layers whose imports point one way (down), a
torch-free spec layer and plugin API, no import cycles, small functions, and no module reaching
the project's folders by their top-level names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.runs import fresh_python

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"bench": "bench", "tasks": "bench.tasks", "methods": "bench.methods",
           "reports": "bench.reports", "grids": "bench.grids"}  # fmt: skip
MAX_FUNCTION_LINES = 80
MAX_TOP_LEVEL_MODULES = 8
# Bottom to top: a module may import its own layer and the ones below, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("bench.errors", "bench.progress", "bench.cache")),
    ("mini world", ("bench.mini",)),
    ("spec", ("bench.spec", "bench.grids")),
    ("data", ("bench.data", "bench.tasks")),
    ("metrics", ("bench.metrics",)),
    ("engine", ("bench.engine", "bench.methods")),
    ("results", ("bench.results",)),
    ("reports", ("bench.reports",)),
    ("run", ("bench.run",)),
    ("perf", ("bench.perf",)),
    ("command line and API", ("bench.cli", "bench.__main__", "bench.plugin", "bench")),
]
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


def layer_of(module: str) -> int:
    """The index in LAYERS of the layer that holds `module` (its longest matching prefix)."""
    matches = [
        (len(prefix), index)
        for index, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not matches:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return max(matches)[1]


def all_imports(path: Path, modules: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, module) of every project module imported anywhere in the file: at module level,
    under TYPE_CHECKING, inside functions. `from a import b` counts `a.b` where that is a
    module, else `a`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.append((node.lineno, name if name in modules else node.module))
    return [(line, name) for line, name in found if name in modules]


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
    assert graph["bench.engine.cell"] and graph["bench.engine.generation"]  # it sees real edges


def test_the_scan_reads_type_checking_imports_and_skips_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from bench.engine.cell import run_cell\n"
        "def f():\n    from bench.run import runner\n"
    )
    assert sorted(module_level_imports(module)) == [
        "bench.engine.cell", "bench.engine.cell.run_cell", "typing", "typing.TYPE_CHECKING"
    ]  # fmt: skip
    modules = project_modules()
    assert all_imports(module, modules) == [(3, "bench.engine.cell"), (5, "bench.run.runner")]


def test_imports_point_down_the_layers():
    """Spec at the bottom; data, metrics and the engine above it; results, reports and the run
    layer above those; the measuring tools and the command line on top. Function-level and
    TYPE_CHECKING imports count: a lazy import upwards is still an upward dependency."""
    modules = project_modules()
    upward = [
        f"{name}:{line} ({LAYERS[layer_of(name)][0]}) imports {target} "
        f"({LAYERS[layer_of(target)][0]})"
        for name, path in modules.items()
        for line, target in all_imports(path, modules)
        if layer_of(target) > layer_of(name)
    ]
    assert not upward, "\n".join(upward)
    assert layer_of("bench.engine.cell") > layer_of("bench.spec.grid")  # the map is read


def test_nothing_below_the_measuring_tools_imports_them():
    modules = project_modules()
    users = {
        name
        for name, path in modules.items()
        for _, target in all_imports(path, modules)
        if target.startswith("bench.perf") and not name.startswith("bench.perf")
    }
    assert users <= {"bench.cli"}, users


def test_at_most_eight_modules_sit_directly_in_bench():
    top = sorted(p.name for p in (ROOT / "bench").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    for folder in (ROOT / "bench").iterdir():
        if folder.is_dir() and (folder / "__init__.py").is_file():
            doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
            assert doc and "import" in doc, f"{folder.name}/__init__.py says what it may import"


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
        "import sys; from bench.spec.grid import expand, load_grid; spec = load_grid('mini')[0]; "
        "expand(spec); load_grid('cocktails'); "
        "print('torch' in sys.modules, 'transformers' in sys.modules, 'pandas' in sys.modules)"
    )
    assert fresh_python(code).split() == ["False", "False", "False"]


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
        "bench/data/sources.json",
    ):
        assert expected in names
    # Installed from the wheel alone (no source tree on the path), the subpackages resolve.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "import bench.tasks.e2e, bench.reports.paper; from bench.spec.grid import load_grid;"
        "from bench.spec.registry import METHODS; print(load_grid('mini')[0].name, "
        "METHODS.get('prefix').Settings().length, bench.tasks.e2e.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["mini", "10"] and str(target) in out.stdout
