"""Methods: honest parameter counts and a prefix that is faithful to the paper."""

import pytest
import torch

from bench.engine.adapted import count
from bench.engine.loading import load_model, meta_model
from tests.builders import build, build_on_mini


def test_prefix_counts_on_gpt2_medium_match_the_paper_arithmetic():
    adapted = build("prefix", meta_model("random:gpt2-medium"), length=10, mlp_hidden=512)
    # Embedding(10, 1024) + Linear(1024, 512) + Linear(512, 24 * 2 * 1024)
    assert count(adapted.trainable_parameters()) == 25_750_016
    adapted.finalize()
    assert count(adapted.stored_state()) == 10 * 24 * 2 * 1024 == 491_520
    assert adapted.trainable_parameters() == []  # the MLP is gone, nothing left to train


def test_flat_prefix_trains_exactly_what_it_stores():
    adapted = build("prefix", meta_model("random:gpt2-medium"), length=10, flat=True)
    assert count(adapted.trainable_parameters()) == 491_520


def test_finetune_trains_and_stores_the_whole_model():
    model = meta_model("random:gpt2-medium")
    total = count(list(model.parameters()))
    adapted = build("finetune", model)
    assert count(adapted.trainable_parameters()) == total
    assert count(adapted.stored_state()) == total == 354_823_168


@pytest.fixture
def tiny():
    return load_model("mini-tiny", seed=0)


def batch(tokenizer, texts):
    encoded = tokenizer(texts, return_tensors="pt", padding=False)
    return encoded.input_ids, torch.ones_like(encoded.input_ids)


def test_prefix_changes_outputs_and_storing_it_reproduces_them(tiny):
    ids, mask = batch(tiny.tokenizer, ["name : The Golden Crown | eatType : pub"])
    with torch.no_grad():
        base_logits = tiny.model(input_ids=ids).logits
    adapted = build("prefix", tiny.model, length=4, mlp_hidden=16)
    adapted.eval()
    with torch.no_grad():
        trained_logits, _ = adapted(ids, mask)
    assert not torch.allclose(trained_logits, base_logits, atol=1e-4)
    adapted.finalize()
    with torch.no_grad():
        final_logits, _ = adapted(ids, mask)
    torch.testing.assert_close(final_logits, trained_logits)

    stored = adapted.stored_state()
    assert list(stored) == ["prefix"] and stored["prefix"].shape == (2, 2, 2, 4, 32)
    fresh, _ = build_on_mini("prefix", seed=None, length=4, mlp_hidden=16)
    fresh.load_stored(stored)
    fresh.eval()
    with torch.no_grad():
        reloaded, _ = fresh(ids, mask)
    torch.testing.assert_close(reloaded, trained_logits)


def test_prefix_is_the_only_thing_trained(tiny):
    adapted = build("prefix", tiny.model, length=4, mlp_hidden=16)
    trainable = {id(p) for p in adapted.trainable_parameters()}
    assert not any(id(p) in trainable for p in tiny.model.parameters())


def test_finetune_stored_state_reloads_onto_a_fresh_base(tiny):
    adapted = build("finetune", tiny.model)
    with torch.no_grad():
        for p in adapted.parameters():
            p.add_(0.01)
    fresh, _ = build_on_mini("finetune", seed=None)
    fresh.load_stored(adapted.stored_state())
    ids, mask = batch(tiny.tokenizer, ["hello world"])
    adapted.eval()
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids, mask)[0], adapted(ids, mask)[0])
