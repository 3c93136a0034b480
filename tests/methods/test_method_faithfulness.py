"""Every method trains, stores only its own weights, and reloads to the same predictions.

For each method on the mini-tiny LM and the mini E2E task: a short training run lowers the dev
loss; what the method stores, written to safetensors and loaded onto a fresh base, reproduces the
trained model's logits and beam-search outputs; and decoding token by token through the cache
gives the logits of one full forward pass (the prefix, adapter or LoRA layers see the same
positions either way).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from bench.engine.adapted import count
from bench.engine.encoding import encode_pair
from bench.engine.generation import generate
from bench.engine.training import evaluate_loss, train
from bench.spec.registry import TASKS
from bench.spec.settings import DecodeConfig, TrainConfig
from bench.spec.task import DEV, TRAIN, training_pairs
from tests.builders import build_on_mini

CPU = torch.device("cpu")
SOURCES = [
    "name : The Golden Crown | eatType : pub | food : Italian",
    "name : Vela | area : riverside",
]

CASES = [
    ("finetune-top", {"k": 1}, 1e-3),
    ("adapter", {"config": "li-liang", "share": 0.03}, 1e-3),
    ("adapter", {"config": "houlsby", "share": 0.03}, 1e-3),
    ("adapter", {"config": "pfeiffer", "share": 0.01}, 1e-3),
    ("lora", {"rank": 4, "alpha": 8.0}, 3e-3),
    ("prefix", {"length": 4, "mlp_hidden": 32}, 5e-3),
    ("prefix", {"length": 4, "flat": True, "init": "words", "init_text": "table to text"}, 5e-3),
    ("prompt", {"length": 4, "mlp_hidden": 32}, 5e-3),
    ("infix", {"length": 4, "mlp_hidden": 32}, 5e-3),
    ("infix", {"length": 4, "mlp_hidden": 32, "variant": "fixed"}, 5e-3),
]


@pytest.mark.parametrize(("method", "settings", "lr"), CASES, ids=lambda v: str(v))
def test_trains_stores_only_its_weights_and_reloads(tmp_path, method, settings, lr):
    model, tokenizer = build_on_mini(method, **settings)
    base_total = count(list(model.base.parameters()))
    task = TASKS.get("mini-e2e")()
    pairs = training_pairs(task.load(TRAIN, None)[:40])
    dev = training_pairs(task.load(DEV, None)[:10])
    config = TrainConfig(epochs=1, lr=lr, batch_size=8, dev_examples=30)
    encoded = [encode_pair(tokenizer, s, t, config) for s, t in dev]
    before = evaluate_loss(model, encoded, 8, tokenizer.eos_token_id, CPU)
    trained = count(model.trainable_parameters())
    assert 0 < trained < base_total
    result = train(model, tokenizer, pairs, dev, config, seed=0, device=CPU)
    assert result.dev_losses[-1][1] < before

    model.finalize()
    model.eval()
    stored = model.stored_state()
    assert count(stored) < base_total  # never the base model
    save_file({k: v.contiguous() for k, v in stored.items()}, tmp_path / "stored.safetensors")

    fresh, _ = build_on_mini(method, **settings)
    fresh.load_stored(load_file(tmp_path / "stored.safetensors"))
    fresh.eval()
    ids, mask, _ = sequence(tokenizer, SOURCES[0], "The Golden Crown is a pub.")
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids, mask)[0], model(ids, mask)[0])
    decode = DecodeConfig(num_beams=2, max_new_tokens=12)
    assert generate(fresh, tokenizer, SOURCES, decode, 512, CPU) == generate(
        model, tokenizer, SOURCES, decode, 512, CPU
    )


@pytest.mark.parametrize(("method", "settings", "lr"), CASES, ids=lambda v: str(v))
def test_incremental_decoding_matches_one_forward_pass(method, settings, lr):
    model, tokenizer = build_on_mini(method, **settings)
    model.eval()
    ids, mask, split = sequence(tokenizer, SOURCES[1], "Vela is by the river.")
    with torch.no_grad():
        full, _ = model(ids, mask)
        logits, cache = model(ids[:, :split], mask[:, :split])  # the source, then token by token
        steps = [logits]
        for t in range(split, ids.shape[1]):
            logits, cache = model(ids[:, t : t + 1], mask[:, : t + 1], cache)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-4)


def sequence(tokenizer, source: str, target: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One `source <eos> target <eos>` row, its mask, and the source's length."""
    _, ids, labels = encode_pair(tokenizer, source, target, TrainConfig())
    tensor = torch.tensor([ids])
    return tensor, torch.ones_like(tensor), labels.count(-100)


def dropout_modes(model) -> set[bool]:
    """The training flags of the base's modules, which its dropout reads."""
    return {m.training for m in model.base.modules()}


@pytest.mark.parametrize("method", ["prefix", "prompt", "infix"])
def test_the_frozen_gpt2_trains_without_dropout_unless_asked(method):
    """The authors' GPT-2 prefix trainer leaves GPT-2 in eval mode (use_dropout defaults to
    no): training the prefix must not switch the frozen base's dropout on."""
    model, _ = build_on_mini(method, length=4, mlp_hidden=8)
    assert model.base.config.resid_pdrop > 0  # there is dropout to switch off
    model.train()
    assert model.training and dropout_modes(model) == {False}
    assert model.derived_settings()["base_dropout"] is False
    asked, _ = build_on_mini(method, length=4, mlp_hidden=8, base_dropout=True)
    asked.train()
    assert dropout_modes(asked) == {True}
    model.eval()
    assert dropout_modes(model) == {False}
    # Methods that train the base itself keep its dropout, as the authors' HF Trainer did.
    finetuned, _ = build_on_mini("finetune")
    finetuned.train()
    assert dropout_modes(finetuned) == {True}


def test_the_authors_adapter_transforms_each_block_output():
    """h + up(relu(down(LayerNorm(h)))) on h, the block's output after the feed-forward
    residual, as in the authors' `forward_oneAdapter` and `Adapter.forward`."""
    model, tokenizer = build_on_mini("adapter", config="li-liang", share=0.03)
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.3 * torch.randn_like(p))  # up-projections start small: make them matter
    seen = []
    layer = model.base.transformer.h[1].output_adapters
    hook = layer.register_forward_hook(lambda m, args, out: seen.append((args, out)))
    ids = torch.tensor([tokenizer.encode(SOURCES[0])])
    with torch.no_grad():
        model(ids, torch.ones_like(ids))
    hook.remove()
    (mlp_out, residual, _), out = seen[0]
    h = mlp_out + residual
    adapter = layer.adapters["bench"]
    norm, down, up = adapter.adapter_norm_before, adapter.adapter_down[1], adapter.adapter_up
    expected = h + up(torch.relu(down(norm(h))))
    torch.testing.assert_close(out, expected)
    assert (out - h).abs().max() > 1e-2
