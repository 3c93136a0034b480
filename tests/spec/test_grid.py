"""Grid validation, expansion and cell identity."""

from pathlib import Path

import pytest

from bench.errors import UserError
from bench.spec.grid import expand, load_grid, preset_names


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return str(path)


BASE = """
name: g
model: mini-tiny
seeds: [0, 1]
tasks:
  - {name: mini-e2e, n_train: [50, 100]}
  - {name: mini-webnlg, splits: [test_unseen]}
methods:
  - {name: finetune}
  - {name: prefix, settings: {length: 5}}
"""


def test_presets_load():
    assert "mini" in preset_names()
    for name in preset_names():
        spec, _ = load_grid(name)
        assert expand(spec)


def test_expansion_is_tasks_x_methods_x_sizes_x_seeds(tmp_path):
    spec, _ = load_grid(write(tmp_path, BASE))
    cells = expand(spec)
    assert len(cells) == (2 + 1) * 2 * 2
    assert len({c.id for c in cells}) == len(cells)
    webnlg = [c for c in cells if c.task == "mini-webnlg"]
    assert all(c.splits == ("test_unseen",) and c.n_train is None for c in webnlg)
    prefix = next(c for c in cells if c.method == "prefix")
    assert prefix.settings == {
        "length": 5,
        "mlp_hidden": 512,
        "flat": False,
        "init": "random",
        "init_text": None,
        "base_dropout": None,
    }
    assert prefix.label == "prefix(length=5)"


def test_cell_identity_is_stable_and_follows_every_setting(tmp_path):
    ids = [c.id for c in expand(load_grid(write(tmp_path, BASE))[0])]
    assert ids == [c.id for c in expand(load_grid(write(tmp_path, BASE))[0])]
    changed = expand(load_grid(write(tmp_path, BASE.replace("length: 5", "length: 6")))[0])
    gone = set(ids) - {c.id for c in changed}
    assert len(gone) == 6  # every prefix cell (2 + 1 sizes x 2 seeds), no finetune cell
    assert all(c.method == "prefix" for c in changed if c.id not in set(ids))
    relabeled = BASE.replace("{name: finetune}", "{name: finetune, label: FT}")
    assert ids == [c.id for c in expand(load_grid(write(tmp_path, relabeled))[0])]
    lr = BASE + "train: {lr: 1.0e-4}\n"
    assert set(ids).isdisjoint(c.id for c in expand(load_grid(write(tmp_path, lr))[0]))
    cell = expand(load_grid(write(tmp_path, BASE))[0])[0]
    copy = cell.model_copy(update={"seed": cell.seed + 1})  # a new cell, not the cached id
    assert copy.seed == cell.seed + 1 and copy.id != cell.id
    assert copy.id == type(cell).model_validate(copy.model_dump()).id


def test_identical_entries_run_once(tmp_path):
    doubled = BASE.replace("  - {name: finetune}", "  - {name: finetune}\n  - {name: finetune}")
    assert len(expand(load_grid(write(tmp_path, doubled))[0])) == 12


def test_model_override_changes_the_cells(tmp_path):
    spec, _ = load_grid(write(tmp_path, BASE), model_override="random:gpt2")
    assert {c.model for c in expand(spec)} == {"random:gpt2"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("name: g", "name: g\nsede: [1]"), r"sede: Extra inputs are not permitted"),
        (("seeds: [0, 1]", "seeds: zero"), r"seeds: Input should be a valid list"),
        (("{name: finetune}", "{name: finetun}"), r"methods.0: unknown method 'finetun'"),
        (("name: mini-e2e,", "name: e2e-mini,"), r"tasks.0: unknown task 'e2e-mini'"),
        (("[test_unseen]", "[test_new]"), r"tasks.1: task 'mini-webnlg' has no eval split"),
        (("length: 5", "lenght: 5"), r"methods.1.lenght: Extra inputs are not permitted"),
        (("length: 5", "length: -1"), r"methods.1.length: Input should be greater"),
        (("{name: finetune}", "{name: finetune, train: {lr: fast}}"), r"methods.0.train.lr: Input"),
        (("model: mini-tiny", "model: random:gpt5"), r"model: unknown architecture 'gpt5'"),
        (("n_train: [50, 100]", "n_train: [0]"), r"tasks.0.n_train: Value error"),
    ],
)
def test_bad_grids_name_the_key(tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        load_grid(write(tmp_path, BASE.replace(*change)))


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match=r"unknown grid 'nope'; presets: .*mini"):
        load_grid("nope")
    with pytest.raises(UserError, match="not valid YAML"):
        load_grid(write(tmp_path, "tasks: [unclosed"))
    with pytest.raises(UserError, match="does not exist"):
        load_grid(str(tmp_path / "missing.yaml"))
