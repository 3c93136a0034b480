"""`run --set KEY=VALUE`, `--seeds` and `--version`: the grid changed from the command line is
validated like its YAML, and the changes are part of the cells' configs (and ids)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.errors import UserError
from bench.spec.grid import expand, load_grid
from bench.spec.overrides import parse_seeds
from tests.runs import ROOT


def cells(*overrides: str, seeds=None):
    return expand(load_grid("mini", overrides=overrides, seeds=seeds)[0])


def test_overrides_reach_the_cells_and_their_ids():
    plain = cells()
    changed = cells(
        "decode.num_beams=5",
        "methods.prefix.settings.length=5",
        "methods.finetune.train.lr=1e-4",
        "train.warmup_steps=0",
        seeds=[7],
    )
    assert {c.seed for c in changed} == {7}
    assert all(c.decode.num_beams == 5 and c.train.warmup_steps == 0 for c in changed)
    assert {c.settings["length"] for c in changed if c.method == "prefix"} == {5}
    assert {c.train.lr for c in changed if c.method == "finetune"} == {1e-4}
    assert {c.train.lr for c in changed if c.method == "prefix"} == {5e-3}  # untouched
    assert not {c.id for c in changed} & {c.id for c in plain}
    same = cells("decode.num_beams=3")  # the grid's own value: the same cells
    assert [c.id for c in same] == [c.id for c in plain]
    _, text = load_grid("mini", overrides=("decode.num_beams=5",), seeds=[7])
    assert text.startswith("# mini.yaml with --set decode.num_beams=5 --seeds 7\n")
    assert load_grid("mini")[1] == (ROOT / "grids/mini.yaml").read_text()


def test_a_method_is_named_by_label_or_index(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text(
        "name: g\nmodel: mini-tiny\ntasks: [{name: mini-e2e}]\n"
        "methods: [{name: prefix, label: short}, {name: prefix, label: long}]\n"
    )
    by_label = expand(load_grid(str(grid), overrides=("methods.long.settings.length=20",))[0])
    assert [c.settings["length"] for c in by_label] == [10, 20]
    by_index = expand(load_grid(str(grid), overrides=("methods.0.settings.length=3",))[0])
    assert [c.settings["length"] for c in by_index] == [3, 10]
    by_name = expand(load_grid(str(grid), overrides=("methods.prefix.settings.flat=true",))[0])
    assert all(c.settings["flat"] for c in by_name)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.lrr=1e-4", "train has no 'lrr'; did you mean 'lr'?"),
        ("decod.num_beams=3", "a grid has no 'decod'; did you mean 'decode'?"),
        ("methods.prefx.settings.length=5", "no method 'prefx'; did you mean 'prefix'?"),
        ("methods.prefix.settings.lenght=5", "prefix's settings has no 'lenght'; did you mean"),
        ("methods.prefix.length=5", "write methods.NAME.settings.KEY=VALUE"),
        ("decode.num_beams=0", "decode.num_beams: Input should be greater than or equal to 1"),
        ("train.lr", "write KEY=VALUE"),
        ("train=3", "write train.KEY=VALUE"),
    ],
)
def test_a_bad_override_is_one_line_naming_the_key(assignment, message):
    with pytest.raises(UserError, match=message) as error:
        load_grid("mini", overrides=(assignment,))
    assert "\n" not in str(error.value)


def test_an_override_of_a_grid_whose_methods_are_not_a_list_is_one_line(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\nmodel: mini-tiny\ntasks: [{name: mini-e2e}]\nmethods: 3\n")
    with pytest.raises(UserError, match="the grid has no method 'prefix'"):
        load_grid(str(grid), overrides=("methods.prefix.settings.length=5",))


def test_seeds_and_version_on_the_command_line(tmp_path):
    assert parse_seeds("0,1,2") == [0, 1, 2]
    with pytest.raises(UserError, match="--seeds '0,x'"):
        parse_seeds("0,x")
    run = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--grid", "mini", "--seeds", "0,-1",
         "--results-dir", str(tmp_path / "r")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "seeds.1: Input should be greater than or equal to 0" in run.stderr
    assert not (tmp_path / "r").exists()
    version = subprocess.run(
        [sys.executable, "-m", "bench", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert version.returncode == 0
    for part in ("bench ", "(git ", "torch ", "CUDA ", "peft "):
        assert part in version.stdout
