"""`bench params`: trained and stored parameters of every method from a config alone."""

from __future__ import annotations

import json

import pytest

from bench.engine.params import parameter_table
from bench.spec import param_counts
from bench.spec.param_counts import MODELS, TABLE
from bench.spec.registry import METHODS
from tests.runs import bench_here as bench
from tests.runs import fresh_python


@pytest.mark.parametrize("model", MODELS)
def test_the_shipped_counts_are_the_engines(model):
    """`bench params` answers from `param_counts.json`: each row as the engine counts it now
    (regenerate with `python -m bench.engine.params` when a method changes)."""
    shipped = json.loads(TABLE.read_text())[model]
    assert json.loads(json.dumps(parameter_table(model))) == shipped


def test_params_answers_without_torch():
    imported = fresh_python(
        "import sys\n"
        "from bench.cli import main\n"
        "sys.argv = ['bench', 'params', '--model', 'gpt2-medium']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    assert imported.startswith("gpt2-medium: 354,823,168 base parameters")
    assert imported.split()[-1] == "False"


def test_a_row_whose_defaults_changed_is_counted_again(tmp_path, monkeypatch, capsys):
    tables = json.loads(TABLE.read_text())
    prefix = next(r for r in tables["mini"]["methods"] if r["method"] == "prefix")
    prefix["settings"]["length"], prefix["stored"] = 99, 1  # counted with other defaults
    stale = tmp_path / "param_counts.json"
    stale.write_text(json.dumps(tables))
    monkeypatch.setattr(param_counts, "TABLE", stale)
    status, out, err = bench(monkeypatch, capsys, "params", "--model", "mini", "--json")
    assert status == 0, err
    rows = {r["method"]: r for r in json.loads(out)["methods"]}
    assert list(rows) == METHODS.names()
    assert rows["prefix"]["stored"] == 10 * 4 * 2 * 128  # L x layers x (key, value) x width


def test_gpt2_medium_table_lists_every_method_with_the_paper_arithmetic(monkeypatch, capsys):
    status, out, err = bench(monkeypatch, capsys, "params", "--model", "gpt2-medium", "--json")
    assert status == 0, err
    table = json.loads(out)
    assert table["model"] == "gpt2-medium" and table["base"] == 354_823_168
    rows = {row["method"]: row for row in table["methods"]}
    assert set(rows) == set(METHODS.names())
    prefix = rows["prefix"]
    assert (prefix["stored"], prefix["trained"]) == (491_520, 25_750_016)
    assert prefix["settings"]["length"] == 10 and prefix["settings"]["mlp_hidden"] == 512
    assert abs(prefix["stored_pct"] - 100 * 491_520 / 354_823_168) < 1e-9
    assert rows["finetune"]["stored"] == rows["finetune"]["trained"] == table["base"]
    assert rows["ensemble"]["trained"] == 0
    assert rows["ensemble"]["stored"] == table["base"] + 491_520
    assert rows["adapter"]["derived"]["bottleneck"] == 215  # li-liang: one adapter per block
    assert rows["peft"]["trained"] is None and "give config" in rows["peft"]["note"]
    assert rows["peft-lora"]["trained"] == rows["lora"]["trained"] == 786_432
    assert "Conv1D" in rows["peft-loha"]["note"]  # PEFT's own reason


def test_peft_counts_are_peft_s_own():
    """Trained: `get_nb_trainable_parameters` of PEFT's model; stored: the tensors of its saved
    state, on gpt2-medium's config (the meta device)."""
    import torch
    from peft import get_peft_model, get_peft_model_state_dict

    from bench.engine.loading import meta_model
    from bench.methods.peft.config import peft_config

    rows = {row["method"]: row for row in parameter_table("gpt2-medium")["methods"]}
    for name in ("peft-lora", "peft-ia3", "peft-vera", "peft-adalora", "peft-ln-tuning"):
        config = METHODS.get(name).Settings().config
        with torch.device("meta"):
            peft_model = get_peft_model(
                meta_model("random:gpt2-medium"), peft_config(config, "CAUSAL_LM")
            )
        trained = peft_model.get_nb_trainable_parameters()[0]
        stored = sum(t.numel() for t in get_peft_model_state_dict(peft_model).values())
        assert (rows[name]["trained"], rows[name]["stored"]) == (trained, stored), name


def test_bart_large_counts_three_prefixes_and_names_what_it_cannot_adapt():
    table = parameter_table("bart-large")
    rows = {row["method"]: row for row in table["methods"]}
    assert rows["prefix"]["stored"] == 3 * 10 * 12 * 2 * 1024
    assert rows["prompt"]["trained"] is None and "decoder-only" in rows["prompt"]["note"]
    assert rows["lora"]["stored"] > 0 and rows["finetune-top"]["stored"] > 0


def test_the_table_renders_and_an_unknown_model_is_one_line_and_exit_2(monkeypatch, capsys):
    status, out, _ = bench(monkeypatch, capsys, "params", "--model", "gpt2")
    assert status == 0 and out.startswith("gpt2: 124,439,808 base parameters")
    assert "prefix" in out and "decoder-only" not in out
    status, out, err = bench(monkeypatch, capsys, "params", "--model", "gpt5")
    assert status == 2 and not out
    assert err.count("\n") == 1 and "unknown model 'gpt5' for params; valid: mini, mini-tiny" in err
    status, out, _ = bench(monkeypatch, capsys, "params")  # the default model: mini
    assert status == 0 and out.startswith("mini: 1,088,256 base parameters")
