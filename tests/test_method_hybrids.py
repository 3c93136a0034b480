"""Hybrids (Hewitt et al., 2021): the ensemble and cocktail reuse stored prefix and FT cells."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.adapted import BuildContext
from bench.data import DEV, TRAIN, training_pairs
from bench.errors import UserError
from bench.generation import generate
from bench.grid import expand, load_grid
from bench.models import load_model
from bench.registry import METHODS, TASKS
from bench.runner import run_cells
from bench.spec import DecodeConfig, TrainConfig
from bench.store import Store
from bench.training import train

CPU = torch.device("cpu")
SOURCES = [
    "name : The Golden Crown | eatType : pub | food : Italian",
    "Varhaton : country : Avalia",
]
PREFIX = {"length": 4, "mlp_hidden": 16}

GRID = """
name: hybrids
model: mini-tiny
tasks:
  - {name: mini-e2e, n_train: [16], eval_limit: 4}
methods:
  - name: ensemble
    settings:
      lam: 0.5
      prefix: {settings: {length: 4, mlp_hidden: 16}, train: {lr: 5.0e-3}}
      finetune: {train: {lr: 1.0e-3}}
  - name: cocktail
    settings:
      beta: 0.5
      teacher: {settings: {length: 4, mlp_hidden: 16}, train: {lr: 5.0e-3}}
    train: {lr: 1.0e-3}
  - name: prefix
    settings: {length: 4, mlp_hidden: 16}
    train: {lr: 5.0e-3}
train: {epochs: 1, batch_size: 8}
decode: {num_beams: 2, max_new_tokens: 12}
"""


def grid(tmp_path: Path, text: str = GRID) -> str:
    path = tmp_path / "hybrids.yaml"
    path.write_text(text)
    return str(path)


def adapted(method: str, context: BuildContext | None = None, **settings):
    loaded = load_model("mini-tiny", seed=0)
    factory = METHODS.get(method)
    torch.manual_seed(0)
    context = context or BuildContext(loaded.tokenizer)
    return factory.build(loaded.model, factory.Settings(**settings), context), loaded.tokenizer


def test_the_grid_runs_dependencies_first_and_once(tmp_path):
    cells = expand(load_grid(grid(tmp_path))[0])
    assert [c.method for c in cells] == ["prefix", "finetune", "ensemble", "cocktail"]
    prefix, finetune, ensemble, cocktail = cells
    assert ensemble.depends == {"prefix": prefix.id, "finetune": finetune.id}
    assert cocktail.depends == {"teacher": prefix.id}  # the explicit prefix entry is that cell
    assert prefix.train.lr == 5e-3 and finetune.train.lr == 1e-3
    assert (prefix.seed, prefix.n_train, prefix.task) == (ensemble.seed, 16, "mini-e2e")


def test_bad_dependency_settings_name_their_place(tmp_path):
    with pytest.raises(UserError, match=r"methods.0.prefix.lenght: Extra inputs"):
        load_grid(
            grid(tmp_path, GRID.replace("{length: 4, mlp_hidden: 16}, train", "{lenght: 4}, train"))
        )


def members(lam: float, mix: str = "probability"):
    prefix, tokenizer = adapted("prefix", **PREFIX)
    with torch.no_grad():  # a random prefix is small: make it matter
        prefix.sites["prefix"].mlp[3].weight.mul_(50)
    finetune, _ = adapted("finetune")
    context = BuildContext(tokenizer, {"prefix": prefix.eval(), "finetune": finetune.eval()})
    ensemble, _ = adapted("ensemble", context, lam=lam, mix=mix)
    return ensemble, prefix, finetune, tokenizer


@pytest.mark.parametrize("mix", ["probability", "loglinear"])
def test_ensemble_weight_one_is_the_prefix_model_and_zero_the_finetuned(mix):
    decode = DecodeConfig(num_beams=3, max_new_tokens=12)
    ensemble, prefix, finetune, tokenizer = members(1.0, mix)
    alone = generate(prefix, tokenizer, SOURCES, decode, 512, CPU)
    assert alone != generate(finetune, tokenizer, SOURCES, decode, 512, CPU)
    assert generate(ensemble, tokenizer, SOURCES, decode, 512, CPU) == alone
    ensemble, prefix, finetune, tokenizer = members(0.0, mix)
    expected = generate(finetune, tokenizer, SOURCES, decode, 512, CPU)
    assert generate(ensemble, tokenizer, SOURCES, decode, 512, CPU) == expected
    assert ensemble.trainable_parameters() == [] and ensemble.stored_state() == {}


def test_ensemble_mixes_probabilities():
    ensemble, prefix, finetune, tokenizer = members(0.3)
    ids = torch.tensor([[*tokenizer.encode(" name : Vela"), tokenizer.eos_token_id]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        mixed = ensemble.scorer().prefill(ids, mask).exp()
        p1, p2 = (m.scorer().prefill(ids, mask).exp() for m in (prefix, finetune))
    torch.testing.assert_close(mixed, 0.3 * p1 + 0.7 * p2)


def cocktail_weights(beta: float | None) -> dict[str, torch.Tensor]:
    """A model's weights after one epoch: fine-tuning (beta None) or a cocktail."""
    teacher, tokenizer = adapted("prefix", **PREFIX)
    if beta is None:
        model, _ = adapted("finetune")
    else:
        model, _ = adapted("cocktail", BuildContext(tokenizer, {"teacher": teacher}), beta=beta)
    task = TASKS.get("mini-e2e")()
    pairs = training_pairs(task.load(TRAIN, None)[:16])
    dev = training_pairs(task.load(DEV, None)[:4])
    config = TrainConfig(epochs=1, lr=1e-3, batch_size=8, dev_examples=8)
    train(model, tokenizer, pairs, dev, config, seed=3, device=CPU)
    return model.stored_state()


def test_cocktail_with_beta_zero_is_fine_tuning_and_stores_only_the_student():
    finetuned = cocktail_weights(None)
    cocktail = cocktail_weights(0.0)
    assert set(cocktail) == set(finetuned)
    assert all(torch.equal(cocktail[k], finetuned[k]) for k in finetuned)
    distilled = cocktail_weights(1.0)
    assert not all(torch.equal(distilled[k], finetuned[k]) for k in finetuned)


@pytest.mark.slow
def test_the_runner_reuses_stored_cells(tmp_path):
    spec, text = load_grid(grid(tmp_path))
    cells = expand(spec)
    store = Store(tmp_path / "bench.sqlite")
    store.register_grid(spec.name, text, [c.id for c in cells])
    summary = run_cells(cells, store, tmp_path, None)
    assert not summary.failed and len(summary.done) == 4
    runs = {r["method"]: r for r in store.runs(spec.name)}
    params = {
        r["method"]: (r["trained_params"], r["stored_params"]) for r in store.results(spec.name)
    }
    prefix_stored, finetune_stored = params["prefix"][1], params["finetune"][1]
    assert params["ensemble"] == (0, prefix_stored + finetune_stored)
    assert params["cocktail"] == (finetune_stored, finetune_stored)
    assert '"train_steps": 0' in runs["ensemble"]["provenance"]
