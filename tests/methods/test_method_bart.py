"""Encoder-decoder models: BART trains and decodes, and its prefix is the paper's three prefixes.

A tiny random BART (the mini tokenizer's ids) stands in for bart-large: the engine's contract
(loss on the target, beam search through the encoder-decoder cache) and prefix-tuning with
separate encoder, decoder and cross-attention prefixes, as in the paper's BART code.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from bench.engine.adapted import BuildContext, count
from bench.engine.encoding import encode_pair, encode_source
from bench.engine.generation import generate
from bench.engine.loading import load_model, meta_model
from bench.engine.training import evaluate_loss, train
from bench.spec.registry import TASKS
from bench.spec.settings import DecodeConfig, TrainConfig
from bench.spec.task import DEV, TRAIN, training_pairs
from tests import builders
from tests.builders import tiny_bart

CPU = torch.device("cpu")
SOURCES = [
    "name : The Golden Crown | eatType : pub | food : Italian",
    "name : Vela | area : riverside",
    "Ivo Silfa : birthPlace : Torlo | Ivo Silfa : club : Kemton Wolves",
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_model("mini-tiny", seed=0).tokenizer


def build(method: str, base, tokenizer, **settings):
    torch.manual_seed(1)
    return builders.build(method, base, BuildContext(tokenizer), **settings).eval()


def source_batch(tokenizer, sources=SOURCES[:1]):
    rows = [encode_source(tokenizer, s, 512) for s in sources]
    ids = torch.tensor(rows)
    return ids, torch.ones_like(ids)


def test_bart_large_prefix_counts_three_prefixes():
    adapted = build("prefix", meta_model("random:bart-large"), None, length=10)
    mlp = 10 * 1024 + (1024 * 512 + 512) + (512 * 12 * 2 * 1024 + 12 * 2 * 1024)
    assert count(adapted.trainable_parameters()) == 3 * mlp
    adapted.finalize()
    stored = adapted.stored_state()
    assert set(stored) == {"encoder_prefix", "decoder_prefix", "cross_prefix"}
    assert count(stored) == 3 * 10 * 12 * 2 * 1024 == 737_280
    assert adapted.trainable_parameters() == []  # the MLPs are gone


def test_each_prefix_reaches_its_attention(tokenizer):
    model = build("prefix", tiny_bart(tokenizer), tokenizer, length=3, flat=True)
    base = tiny_bart(tokenizer)
    ids, mask = source_batch(tokenizer)
    start = torch.full((1, 1), tokenizer.eos_token_id)
    decoder_in = torch.cat([start, torch.tensor([tokenizer.encode(" The pub")])], dim=1)
    with torch.no_grad():
        plain = base.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        encoded = model.encode(ids, mask)
        assert not torch.allclose(encoded, plain, atol=1e-4)  # the encoder prefix

        def outputs():
            logits, _ = model(decoder_in, torch.ones_like(decoder_in), source=(ids, mask))
            return model.encode(ids, mask), logits

        before_encoded, before = outputs()
        for site in ("decoder_prefix", "cross_prefix"):
            model.sites[site].flat.add_(0.5)
            after_encoded, after = outputs()
            torch.testing.assert_close(after_encoded, before_encoded)  # the encoder is unmoved
            assert not torch.allclose(after, before, atol=1e-4), site
            before = after


def test_decoder_positions_start_at_zero_after_the_prefix(tokenizer):
    """As in the paper's BART code: the prefix does not shift the decoder's positions."""
    model = build("prefix", tiny_bart(tokenizer), tokenizer, length=5, mlp_hidden=8)
    positions = model.base.get_decoder().embed_positions
    seen = []
    positions.register_forward_hook(lambda module, args, out: seen.append(out))
    ids, mask = source_batch(tokenizer)
    decoder_in = torch.full((1, 4), tokenizer.eos_token_id)
    with torch.no_grad():
        model(decoder_in, torch.ones_like(decoder_in), source=(ids, mask))
    torch.testing.assert_close(seen[0][0], positions.weight[2:6])  # BART's offset is 2


def test_prefix_changes_generation_and_reloads_from_its_three_prefixes(tokenizer, tmp_path):
    decode = DecodeConfig(num_beams=3, max_new_tokens=10)
    plain = build("finetune", tiny_bart(tokenizer), tokenizer)
    model = build("prefix", tiny_bart(tokenizer), tokenizer, length=4, mlp_hidden=16)
    with torch.no_grad():
        for site in model.sites.values():  # a random prefix is small: make it matter
            site.mlp[3].weight.mul_(50)
    model.finalize()
    outputs = generate(model, tokenizer, SOURCES, decode, 512, CPU)
    assert outputs != generate(plain, tokenizer, SOURCES, decode, 512, CPU)
    stored = model.stored_state()
    assert not any("mlp" in key for key in stored)
    save_file({k: v.contiguous() for k, v in stored.items()}, tmp_path / "stored.safetensors")
    fresh = build("prefix", tiny_bart(tokenizer), tokenizer, length=4, mlp_hidden=16)
    fresh.load_stored(load_file(tmp_path / "stored.safetensors"))
    assert generate(fresh, tokenizer, SOURCES, decode, 512, CPU) == outputs
    # right-padded sources in a batch decode as they do alone
    one_by_one = DecodeConfig(num_beams=3, max_new_tokens=10, batch_size=1)
    assert generate(fresh, tokenizer, SOURCES, one_by_one, 512, CPU) == outputs


def test_greedy_matches_transformers_generate(tokenizer):
    model = build("finetune", tiny_bart(tokenizer), tokenizer)
    ours = generate(
        model, tokenizer, SOURCES, DecodeConfig(num_beams=1, max_new_tokens=8), 512, CPU
    )
    for source, output in zip(SOURCES, ours, strict=True):
        ids, mask = source_batch(tokenizer, [source])
        theirs = model.base.generate(
            input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=8
        )
        assert output == tokenizer.decode(theirs[0, 1:], skip_special_tokens=True).strip()


@pytest.mark.parametrize(
    ("method", "settings", "lr"),
    [("finetune", {}, 1e-3), ("prefix", {"length": 4, "mlp_hidden": 32}, 5e-3)],
)
def test_training_on_the_target_lowers_dev_loss(tokenizer, method, settings, lr):
    model = build(method, tiny_bart(tokenizer), tokenizer, **settings)
    task = TASKS.get("mini-e2e")()
    pairs = training_pairs(task.load(TRAIN, None)[:40])
    dev = training_pairs(task.load(DEV, None)[:10])
    config = TrainConfig(epochs=1, lr=lr, batch_size=8, dev_examples=30)
    start = model.decoder_start_token_id
    encoded = [encode_pair(tokenizer, s, t, config, start) for s, t in dev]
    source, ids, labels = encoded[0]
    assert labels[0] == -100 and labels[1:] == ids[1:] and source[-1] == tokenizer.eos_token_id
    before = evaluate_loss(model, encoded, 8, tokenizer.eos_token_id, CPU)
    result = train(model, tokenizer, pairs, dev, config, seed=0, device=CPU)
    assert result.dev_losses[-1][1] < before


def test_prefix_decodes_token_by_token_as_in_one_pass(tokenizer):
    model = build("prefix", tiny_bart(tokenizer), tokenizer, length=3, mlp_hidden=8)
    ids, mask = source_batch(tokenizer)
    decoder_in = torch.tensor([[tokenizer.eos_token_id, *tokenizer.encode(" The Golden Crown")]])
    full_mask = torch.ones_like(decoder_in)
    with torch.no_grad():
        full, _ = model(decoder_in, full_mask, source=(ids, mask))
        logits, state = model(decoder_in[:, :1], full_mask[:, :1], source=(ids, mask))
        steps = [logits]
        for t in range(1, decoder_in.shape[1]):
            logits, state = model(decoder_in[:, t : t + 1], full_mask[:, : t + 1], state)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-4)


def test_the_frozen_bart_trains_with_dropout_as_the_authors_did(tokenizer):
    """The authors' BART prefix trainer (PyTorch Lightning) puts BART in train mode (BART's
    dropout reads its modules' `training` flags)."""
    model = build("prefix", tiny_bart(tokenizer), tokenizer, length=3, mlp_hidden=8)
    assert model.base.config.dropout > 0
    model.train()
    assert {m.training for m in model.base.modules()} == {True}
    assert model.derived_settings()["base_dropout"] is True
    off = build("prefix", tiny_bart(tokenizer), tokenizer, length=3, base_dropout=False).train()
    assert {m.training for m in off.base.modules()} == {False}
    assert all(site.training for site in off.sites.values())


def test_bart_prefixes_start_from_the_words_as_bart_reads_them(tokenizer):
    """Each of the three prefixes starts from its own attention's keys and values of the init
    text: the encoder's self-attention, the decoder's self-attention and cross-attention."""
    text = "table to text"
    ids = tokenizer.encode(text, add_special_tokens=False)
    model = build(
        "prefix", tiny_bart(tokenizer), tokenizer, length=2, flat=True, init="words", init_text=text
    )
    assert model.prefix_length == model.cross_prefix_length == len(ids)
    base = tiny_bart(tokenizer)
    words = torch.tensor([ids])
    with torch.no_grad():
        encoded = base.get_encoder()(input_ids=words, output_hidden_states=True)
        out = base(input_ids=words, decoder_input_ids=words, use_cache=True)
    heads, layers = 2, base.config.encoder_layers
    for i, layer in enumerate(base.get_encoder().layers):
        states = encoded.hidden_states[i][0]  # the input of encoder layer i (post-LN BART)
        for j, projection in enumerate((layer.self_attn.k_proj, layer.self_attn.v_proj)):
            expected = projection(states).view(len(ids), heads, -1).transpose(0, 1)
            got = model.sites["encoder_prefix"].tensor()[i, j]
            torch.testing.assert_close(got, expected.detach())
    assert model.sites["encoder_prefix"].tensor().shape[0] == layers
    cache = out.past_key_values
    for site, part in (
        ("decoder_prefix", cache.self_attention_cache),
        ("cross_prefix", cache.cross_attention_cache),
    ):
        expected = torch.stack([torch.stack([la.keys[0], la.values[0]]) for la in part.layers])
        torch.testing.assert_close(model.sites[site].tensor(), expected)
    # and the model still decodes: the prefix sits in front of every attention
    ids_, mask = source_batch(tokenizer)
    with torch.no_grad():
        logits, _ = model(
            torch.tensor([[tokenizer.eos_token_id]]),
            torch.ones(1, 1, dtype=torch.long),
            source=(ids_, mask),
        )
    assert torch.isfinite(logits).all()
