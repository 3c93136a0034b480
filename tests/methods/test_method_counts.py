"""Parameter counts of every method on GPT-2 medium's real config, and what each one trains."""

from __future__ import annotations

import pytest
import torch

from bench.engine.adapted import BuildContext, count
from bench.engine.loading import load_model, meta_model
from bench.errors import UserError
from bench.spec.registry import METHODS
from tests import builders
from tests.builders import build_on_mini

BASE = 354_823_168  # GPT-2 medium
BLOCK = 12_596_224  # one of its 24 transformer blocks


def build(method: str, **settings):
    """`method` on GPT-2 medium's shapes, without memory."""
    with torch.device("meta"):
        return builders.build(method, meta_model("random:gpt2-medium"), **settings)


def test_finetune_top2_is_the_papers_seven_percent():
    adapted = build("finetune-top")
    assert count(adapted.trainable_parameters()) == 2 * BLOCK + 2 * 1024  # + the final layer norm
    assert round(100 * count(adapted.stored_state()) / BASE, 1) == 7.1
    names = set(adapted.stored_state())
    assert all(
        n.startswith(("transformer.h.22.", "transformer.h.23.", "transformer.ln_f.")) for n in names
    )
    with_embeddings = build("finetune-top", embeddings=True)
    assert count(with_embeddings.trainable_parameters()) == 2 * BLOCK + 2 * 1024 + 50257 * 1024


def test_finetune_top_rejects_more_blocks_than_the_model_has():
    with pytest.raises(UserError, match="only 24 blocks"):
        build("finetune-top", k=25)


@pytest.mark.parametrize(
    ("config", "share", "bottleneck"),
    [
        ("houlsby", 0.03, 108),
        ("houlsby", 0.001, 3),
        ("pfeiffer", 0.03, 216),
        ("pfeiffer", 0.001, 7),
    ],
)
def test_adapter_width_is_derived_from_the_share(config, share, bottleneck):
    adapted = build("adapter", config=config, share=share)
    derived = adapted.derived_settings()
    assert derived["bottleneck"] == bottleneck
    assert derived["reduction_factor"] == pytest.approx(1024 / bottleneck)
    trained = count(adapted.trainable_parameters())
    assert trained == count(adapted.stored_state())
    assert derived["actual_share"] == trained / BASE
    assert abs(trained / BASE - share) < 0.0005 + share * 0.02  # the nearest whole width


@pytest.mark.parametrize(("share", "bottleneck"), [(0.03, 215), (0.001, 6)])
def test_the_authors_adapter_has_one_normed_bottleneck_per_block(share, bottleneck):
    """adapter_design=1 of the authors' code: per block a LayerNorm (2d), down (d m + m) and
    up (m d + d); nothing after the attention."""
    adapted = build("adapter", config="li-liang", share=share)
    assert adapted.derived_settings()["bottleneck"] == bottleneck
    per_block = 2 * 1024 + (1024 * bottleneck + bottleneck) + (bottleneck * 1024 + 1024)
    assert count(adapted.trainable_parameters()) == 24 * per_block
    names = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert all(".output_adapters." in n for n in names)


def test_lora_trains_and_stores_only_the_low_rank_factors():
    adapted = build("lora", rank=8)
    # c_attn of each of 24 layers: A is 8 x 1024, B is 3072 x 8
    assert count(adapted.trainable_parameters()) == 24 * (8 * 1024 + 3072 * 8) == 786_432
    stored = adapted.stored_state()
    assert count(stored) == 786_432 and all("lora_" in k for k in stored)


def test_prompt_stores_embeddings_only():
    adapted = build("prompt", length=10)
    assert count(adapted.trainable_parameters()) == 10 * 1024 + (1024 * 512 + 512) + (
        512 * 1024 + 1024
    )
    adapted.finalize()
    assert count(adapted.stored_state()) == 10 * 1024


def test_prefix_settings_check_the_init_text():
    settings = METHODS.get("prefix").Settings
    with pytest.raises(ValueError, match="init_text is needed by init: words"):
        settings(init="words")
    with pytest.raises(ValueError, match="init_text is needed"):
        settings(init_text="summarize")
    assert settings(init="words", init_text="summarize").init_text == "summarize"


def test_words_initialization_starts_from_the_words_activations():
    loaded = load_model("mini-tiny", seed=0)
    context = BuildContext(loaded.tokenizer)
    ids = loaded.tokenizer.encode("table to text", add_special_tokens=False)
    with torch.no_grad():
        cache = loaded.model(input_ids=torch.tensor([ids]), use_cache=True).past_key_values
    expected = torch.stack([torch.stack([la.keys[0], la.values[0]]) for la in cache.layers])
    settings = {"length": len(ids), "init": "words", "init_text": "table to text"}
    flat = builders.build("prefix", loaded.model, context, flat=True, **settings)
    torch.testing.assert_close(flat.sites["prefix"].tensor(), expected)
    torch.manual_seed(0)
    mlp = builders.build("prefix", loaded.model, context, mlp_hidden=64, **settings)
    torch.manual_seed(0)
    untrained = builders.build("prefix", loaded.model, context, mlp_hidden=64, length=len(ids))
    fitted, start = (m.sites["prefix"].tensor().detach() for m in (mlp, untrained))
    error = torch.nn.functional.mse_loss
    assert error(fitted, expected) < 0.5 * error(start, expected)


def test_a_longer_init_text_sets_the_prefix_length_and_a_shorter_one_repeats():
    """The authors set L to the init text's token count; a shorter text fills `length`."""
    loaded = load_model("mini-tiny", seed=0)
    context = BuildContext(loaded.tokenizer)
    text = "summarize the table below as one fluent text"
    ids = loaded.tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) > 3
    longer = builders.build(
        "prefix", loaded.model, context, length=3, flat=True, init="words", init_text=text
    )
    assert longer.prefix_length == len(ids)
    assert longer.derived_settings() == {
        "base_dropout": False,
        "length": len(ids),
        "init_tokens": len(ids),
    }
    with torch.no_grad():
        cache = loaded.model(input_ids=torch.tensor([ids]), use_cache=True).past_key_values
    expected = torch.stack([torch.stack([la.keys[0], la.values[0]]) for la in cache.layers])
    torch.testing.assert_close(longer.sites["prefix"].tensor(), expected)  # not cut
    length = 2 * len(ids) + 1
    shorter = builders.build(
        "prefix", loaded.model, context, length=length, flat=True, init="words", init_text=text
    )
    assert shorter.prefix_length == length
    assert shorter.derived_settings()["length"] == length
    repeated = (ids * 3)[:length]
    with torch.no_grad():
        cache = loaded.model(input_ids=torch.tensor([repeated]), use_cache=True).past_key_values
    expected = torch.stack([torch.stack([la.keys[0], la.values[0]]) for la in cache.layers])
    torch.testing.assert_close(shorter.sites["prefix"].tensor(), expected)


def test_infix_is_hidden_from_the_source():
    infix, tokenizer = build_on_mini("infix", seed=None, length=3, mlp_hidden=16)
    infix.eval()
    eos = tokenizer.eos_token_id
    source = [*tokenizer.encode(" name : Vela | area : riverside"), eos]
    ids = torch.tensor([source + tokenizer.encode(" Vela is")])
    with torch.no_grad():
        logits, _ = infix(ids, torch.ones_like(ids))
        plain = infix.base(input_ids=ids).logits
    n = len(source) - 1  # the source before its separator: as if there were no infix
    torch.testing.assert_close(logits[:, :n], plain[:, :n])
    assert not torch.allclose(logits[:, n:], plain[:, n:], atol=1e-4)
