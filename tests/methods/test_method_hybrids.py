"""Hybrids (Hewitt et al., 2021): the ensemble and cocktail reuse stored prefix and FT cells."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.engine.adapted import IGNORE, BuildContext
from bench.engine.encoding import encode_pair
from bench.engine.generation import generate
from bench.engine.training import collate, train
from bench.errors import UserError
from bench.methods.prefix.model import layer_cache
from bench.results.store import Store
from bench.run.runner import run_cells
from bench.spec.grid import expand, load_grid
from bench.spec.registry import TASKS
from bench.spec.settings import DecodeConfig, TrainConfig
from bench.spec.task import DEV, TRAIN, training_pairs
from tests.builders import build_on_mini
from tests.conftest import HYBRID_GRID

CPU = torch.device("cpu")
SOURCES = [
    "name : The Golden Crown | eatType : pub | food : Italian",
    "Varhaton : country : Avalia",
]
PREFIX = {"length": 4, "mlp_hidden": 16}


def grid(tmp_path: Path, text: str = HYBRID_GRID) -> str:
    path = tmp_path / "hybrids.yaml"
    path.write_text(text)
    return str(path)


def test_the_grid_runs_dependencies_first_and_once(tmp_path):
    cells = expand(load_grid(grid(tmp_path))[0])
    assert [c.method for c in cells] == ["prefix", "finetune", "ensemble", "cocktail"]
    prefix, finetune, ensemble, cocktail = cells
    assert ensemble.depends == {"prefix": prefix.id, "finetune": finetune.id}
    assert cocktail.depends == {"teacher": prefix.id}  # the explicit prefix entry is that cell
    assert prefix.train.lr == 5e-3 and finetune.train.lr == 1e-3
    assert (prefix.seed, prefix.n_train, prefix.task) == (ensemble.seed, 16, "mini-e2e")


def test_bad_dependency_settings_name_their_place(tmp_path):
    misspelt = HYBRID_GRID.replace("{length: 4, mlp_hidden: 16}, train", "{lenght: 4}, train")
    with pytest.raises(UserError, match=r"methods.0.prefix.lenght: Extra inputs"):
        load_grid(grid(tmp_path, misspelt))


def members(lam: float, mix: str = "probability"):
    prefix, tokenizer = build_on_mini("prefix", **PREFIX)
    with torch.no_grad():  # a random prefix is small: make it matter
        prefix.sites["prefix"].mlp[3].weight.mul_(50)
    finetune, _ = build_on_mini("finetune")
    context = BuildContext(tokenizer, {"prefix": prefix.eval(), "finetune": finetune.eval()})
    ensemble, _ = build_on_mini("ensemble", context=context, lam=lam, mix=mix)
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


def full_sequence_logprobs(model, rows: list[list[int]]) -> torch.Tensor:
    """Next-token log-probabilities after each row, from one uncached forward pass per row."""
    out = []
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row])
            logits, _ = model(ids, torch.ones_like(ids))
            out.append(torch.log_softmax(logits[0, -1].double(), dim=-1))
    return torch.stack(out)


def by_hand(first: torch.Tensor, second: torch.Tensor, lam: float, mix: str) -> torch.Tensor:
    if mix == "loglinear":
        return torch.log_softmax(lam * first + (1 - lam) * second, dim=-1)
    return torch.log(lam * first.exp() + (1 - lam) * second.exp())


@pytest.mark.parametrize("mix", ["probability", "loglinear"])
def test_ensemble_at_a_mid_lambda_through_a_whole_beam_step(mix):
    """Prefill, expand to three beams, step, reorder as beam search does, step again: every
    row's distribution is the hand-made mixture of the two members' full-sequence ones."""
    lam = 0.3
    ensemble, prefix, finetune, tokenizer = members(lam, mix)
    prompt = [*tokenizer.encode(" name : Vela | food : Thai"), tokenizer.eos_token_id]
    scorer = ensemble.scorer()
    with torch.no_grad():
        first = scorer.prefill(torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long))
        scorer.expand(3)
        step_one = first[0].topk(3).indices.tolist()
        scorer.step(torch.tensor(step_one))
        rows = torch.tensor([2, 0, 0])
        scorer.reorder(rows)
        step_two = [11, 12, 13]
        mixed = scorer.step(torch.tensor(step_two))
    sequences = [[*prompt, step_one[r], t] for r, t in zip(rows.tolist(), step_two, strict=True)]
    members_ = [full_sequence_logprobs(m, sequences) for m in (prefix, finetune)]
    expected = by_hand(*members_, lam, mix)
    torch.testing.assert_close(mixed.double(), expected, atol=1e-4, rtol=0)
    initial = by_hand(*(full_sequence_logprobs(m, [prompt]) for m in (prefix, finetune)), lam, mix)
    torch.testing.assert_close(first.double(), initial, atol=1e-4, rtol=0)
    # The mixture is neither member: a mid lambda that collapsed to one model would fail here.
    assert all((expected - m).abs().max() > 1e-2 for m in members_)


def test_cocktail_loss_is_cross_entropy_plus_beta_kl_from_the_prefixed_teacher():
    """`training_loss` against a hand computation: mean target cross-entropy plus beta times
    the mean over target positions of KL(teacher || student), the teacher reading its prefix."""
    beta = 0.7
    teacher, tokenizer = build_on_mini("prefix", **PREFIX)
    with torch.no_grad():  # a random prefix is small: make it matter
        teacher.sites["prefix"].mlp[3].weight.mul_(50)
    context = BuildContext(tokenizer, {"teacher": teacher})
    cocktail, _ = build_on_mini("cocktail", context=context, beta=beta)
    cocktail.train()
    assert not cocktail.teacher.training  # the teacher never draws dropout
    cocktail.eval()  # the student's dropout off, so the hand computation is deterministic
    pairs = training_pairs(TASKS.get("mini-e2e")().load(TRAIN, None)[:3])
    config = TrainConfig()
    batch = collate(
        [encode_pair(tokenizer, s, t, config) for s, t in pairs], tokenizer.eos_token_id
    )
    with torch.no_grad():
        loss = cocktail.training_loss(batch).item()

    kv = teacher.sites["prefix"].tensor()
    length = kv.shape[3]
    cross_entropy, kl, positions = 0.0, 0.0, 0
    for row in range(len(pairs)):
        n = int(batch.attention_mask[row].sum())
        ids = batch.input_ids[row : row + 1, :n]
        with torch.no_grad():
            student = cocktail.base(input_ids=ids).logits[0].double().log_softmax(-1)
            prefixed = teacher.base(
                input_ids=ids,
                past_key_values=layer_cache(kv, 1),
                attention_mask=torch.ones(1, length + n, dtype=torch.long),
                position_ids=torch.arange(length, length + n)[None],
            )
            teacher_lp = prefixed.logits[0].double().log_softmax(-1)
        for t in range(n - 1):
            label = int(batch.labels[row, t + 1])
            if label == IGNORE:
                continue
            cross_entropy -= float(student[t, label])
            kl += float((teacher_lp[t].exp() * (teacher_lp[t] - student[t])).sum())
            positions += 1
    expected = cross_entropy / positions + beta * kl / positions
    # Student and teacher share the pretrained base: only the teacher's prefix makes them differ.
    assert kl / positions > 0.05
    assert loss == pytest.approx(expected, abs=1e-4)


def cocktail_weights(beta: float | None) -> dict[str, torch.Tensor]:
    """A model's weights after one epoch: fine-tuning (beta None) or a cocktail."""
    teacher, tokenizer = build_on_mini("prefix", **PREFIX)
    if beta is None:
        model, _ = build_on_mini("finetune")
    else:
        context = BuildContext(tokenizer, {"teacher": teacher})
        model, _ = build_on_mini("cocktail", context=context, beta=beta)
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
