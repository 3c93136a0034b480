"""Methods from outside the repository: a plugin module named with --plugin, in a grid's
`plugins:`, or installed as a `bench.plugins` entry point registers itself and runs like ours.

Plugins run in subprocesses here, so that this session's registries stay as the repository
defines them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import plugin as plugin_api
from bench.errors import UserError
from bench.spec.registry import TASKS, Registry
from tests.conftest import TINY_GRID
from tests.results.test_compare import perfect_copy
from tests.runs import fresh_python

ROOT = Path(__file__).resolve().parents[2]

# BitFit (Ben Zaken et al., 2022): only the bias terms are trained and stored. A whole method in
# one small file of the user's own package, registered in one call.
BITFIT = """
from bench.plugin import (
    AdaptedLM,
    MethodSettings,
    load_trained_state,
    register_method,
    trained_state,
)


class BitFitSettings(MethodSettings):
    pass


class BitFitLM(AdaptedLM):
    def __init__(self, base, settings, context):
        super().__init__(base)
        for name, parameter in base.named_parameters():
            parameter.requires_grad_(name.endswith(".bias"))

    def stored_state(self):
        return trained_state(self.base)

    def load_stored(self, state):
        load_trained_state(self.base, state)


register_method("bitfit", BitFitSettings, BitFitLM, description="BitFit: bias terms only")
"""


# A task of the user's own: its name is written once, in its registration.
TASK = """
from bench.plugin import TASKS, TRAIN, EvalSplit, Example, Task


@TASKS.register("echo")
class Echo(Task):
    description = "copy the input"
    eval_splits = (EvalSplit("test", ood=False),)

    def load(self, split, data_dir=None):
        self.check_split(split)
        return [Example(f"say {i}", (f"{i}",)) for i in range(8 if split == TRAIN else 4)]
"""


def test_the_plugin_api_imports_no_torch_and_resolves_every_name():
    code = (
        "import sys, bench.plugin; print('torch' in sys.modules, 'transformers' in sys.modules); "
        "[getattr(bench.plugin, name) for name in bench.plugin.__all__]; "
        "print('torch' in sys.modules)"
    )
    assert fresh_python(code).split() == ["False", "False", "True"]
    assert sorted(dir(plugin_api)) == sorted(plugin_api.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        plugin_api.nope  # noqa: B018


def test_the_readme_recipe_is_the_tested_plugin_and_imports_only_bench_plugin():
    readme = (ROOT / "README.md").read_text()
    assert "# mypkg/bitfit.py\n" + BITFIT.lstrip("\n") in readme
    for source in (BITFIT, TASK):
        imports = [line for line in source.splitlines() if line.startswith(("from ", "import "))]
        assert imports and all(line.startswith("from bench.plugin import") for line in imports)


def test_a_task_is_named_by_its_registration_alone(tmp_path):
    namespace: dict = {}
    exec(compile(TASK.replace('"echo"', '"echo-test"'), "echo", "exec"), namespace)
    assert TASKS.get("echo-test") is namespace["Echo"] and namespace["Echo"].name == "echo-test"
    assert len(namespace["Echo"]().load("test")) == 4
    for name in TASKS.names():
        assert TASKS.get(name).name == name
    for path in (ROOT / "tasks").glob("*.py"):
        assert not re.search(r"^    name = ", path.read_text(), re.M), path

    registry: Registry = Registry("task", plugin_api.Task, named=True)

    class Twice(plugin_api.Task):
        name = "other"

    with pytest.raises(TypeError, match="also declares name = 'other'"):
        registry.register("twice")(Twice)
    with pytest.raises(UserError, match="unknown task"):
        registry.get("twice")


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    package = tmp_path / "plugins" / "mymethods"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "bitfit.py").write_text(BITFIT)
    (package / "echo.py").write_text(TASK)
    return tmp_path / "plugins"


def bench(where: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` in `where`, with the plugins folder on the path."""
    env = {**os.environ, "PYTHONPATH": str(where / "plugins"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True, text=True, env=env, cwd=where, timeout=600,
    )  # fmt: skip


def test_a_plugin_named_on_the_command_line_registers_its_method(plugin_path, tmp_path):
    plain = bench(tmp_path, "list", "methods")
    assert plain.returncode == 0 and "bitfit" not in plain.stdout
    listed = bench(tmp_path, "list", "methods", "--plugin", "mymethods.bitfit")
    assert listed.returncode == 0, listed.stderr
    assert "bitfit\tmymethods\tBitFit: bias terms only" in listed.stdout.splitlines()


def test_a_plugin_task_is_listed_under_its_registered_name(plugin_path, tmp_path):
    listed = bench(tmp_path, "list", "tasks", "--plugin", "mymethods.echo")
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("echo") for line in listed.stdout.splitlines())


def test_an_installed_entry_point_plugin_loads_by_itself(plugin_path, tmp_path):
    info = plugin_path / "mymethods-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mymethods\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bench.plugins]\nbitfit = mymethods.bitfit\n")
    listed = bench(tmp_path, "list", "methods")
    assert listed.returncode == 0, listed.stderr
    assert "bitfit\tmymethods\tBitFit: bias terms only" in listed.stdout.splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--plugin", "nosuch.module"), "plugin 'nosuch.module' cannot be imported"),
        (("--plugin", "mymethods.clash"), "method 'prefix' is registered twice"),
    ],
)
def test_a_bad_plugin_is_one_line_and_exit_2(plugin_path, tmp_path, args, message):
    (plugin_path / "mymethods" / "clash.py").write_text(
        BITFIT.replace('register_method("bitfit"', 'register_method("prefix"')
    )
    out = bench(tmp_path, "run", "--grid", "mini", "--results-dir", "r", *args)
    assert out.returncode == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_grid_with_a_plugin_method_runs_it(plugin_path, tmp_path):
    grid = tmp_path / "bitfit.yaml"
    grid.write_text(
        TINY_GRID.replace("name: tiny", "name: tiny-bitfit\nplugins: [mymethods.bitfit]")
        .replace("  - name: prefix\n", "  - name: bitfit\n    train: {lr: 1.0e-2}\n"
                 "  - name: prefix\n")
    )  # fmt: skip
    out = bench(tmp_path, "run", "--grid", str(grid), "--results-dir", "r")
    assert out.returncode == 0, out.stderr
    assert "6 run, 0 already done, 0 failed" in out.stderr
    rows = json.loads(bench(tmp_path, "export", "--results-dir", "r").stdout)
    bitfit = [r for r in rows if r["method"] == "bitfit"]
    finetune = [r for r in rows if r["method"] == "finetune"]
    assert {r["task"] for r in bitfit} == {"mini-e2e", "mini-webnlg"}
    # mini-tiny (2 GPT-2 blocks, width 64): 10 bias vectors of 64, 2 of 192, 2 of 256, ln_f
    assert 0 < bitfit[0]["trained_params"] < finetune[0]["trained_params"] / 50
    assert bitfit[0]["trained_params"] == bitfit[0]["stored_params"]
    # The README's recipe: the run checked against a baseline of itself passes; against one in
    # which the new method's mini-e2e cell was far better, it fails, naming that cell.
    check = ("run", "--grid", str(grid), "--results-dir", "r", "--check")
    same = bench(tmp_path, *check, "r")
    assert same.returncode == 0 and "no regression" in same.stderr, same.stderr
    better = perfect_copy(tmp_path / "r", tmp_path / "better", "mini-e2e", "bitfit")
    worse = bench(tmp_path, *check, str(better))
    assert worse.returncode == 1, worse.stderr
    flagged = [line for line in worse.stderr.splitlines() if "regression" in line and "│" in line]
    assert flagged and all("bitfit" in line for line in flagged), worse.stderr
