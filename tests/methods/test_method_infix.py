"""The authors' infix (`get_prompt_p5_infix` in their GPT-2 code), against a hand computation."""

from __future__ import annotations

import pytest
import torch

from bench.methods.prefix.model import layer_cache
from tests.builders import build_on_mini

SOURCES = [  # sources of different lengths, so that padding shows
    " name : Vela | area : riverside",
    " name : The Golden Crown | eatType : pub | food : Thai",
]
TARGET = " Vela is by the river."


def build():
    model, tokenizer = build_on_mini("infix", length=3, mlp_hidden=16)
    model.eval()
    with torch.no_grad():  # the MLP's offsets start small: make them matter
        model.sites["prefix"].mlp[3].weight.mul_(30)
    return model, tokenizer


@pytest.fixture(scope="module")
def infix():
    return build()


def pair(tokenizer, source: str) -> tuple[list[int], list[int]]:
    eos = tokenizer.eos_token_id
    return tokenizer.encode(source), [eos, *tokenizer.encode(TARGET), eos]


def by_hand(model, x: list[int], rest: list[int]) -> torch.Tensor:
    """GPT-2 reads [x; pseudo-tokens]; the MLP's offsets are added to the pseudo-tokens' keys
    and values; the separator and target continue from there. Logits of the separator on."""
    base, length = model.base, model.prefix_length
    embeds = torch.cat(
        [base.get_input_embeddings()(torch.tensor([x])), model.pseudo.weight[None]], 1
    )
    with torch.no_grad():
        first = base(inputs_embeds=embeds, use_cache=True).past_key_values
        own = torch.stack([torch.stack([layer.keys[0], layer.values[0]]) for layer in first.layers])
        kv = own.clone()
        kv[:, :, :, len(x) :] += model.sites["prefix"].tensor()
        n = len(x) + length
        out = base(
            input_ids=torch.tensor([rest]),
            past_key_values=layer_cache(kv, 1),
            position_ids=torch.arange(n, n + len(rest))[None],
        )
    return out.logits[0]


def test_the_infix_is_the_models_own_reading_plus_the_mlps_offsets(infix):
    model, tokenizer = infix
    x, rest = pair(tokenizer, SOURCES[0])
    ids = torch.tensor([x + rest])
    with torch.no_grad():
        logits, _ = model(ids, torch.ones_like(ids))
        plain = model.base(input_ids=ids).logits
    torch.testing.assert_close(logits[0, len(x) :], by_hand(model, x, rest), atol=1e-4, rtol=0)
    torch.testing.assert_close(logits[0, : len(x)], plain[0, : len(x)])  # x sees no infix
    assert (logits[0, len(x) :] - plain[0, len(x) :]).abs().max() > 1e-2


def test_the_infix_depends_on_the_input(infix):
    """Unlike a prefix (or the fixed infix), the pseudo-tokens' activations follow the source."""
    model, tokenizer = infix
    caches = []
    for source in SOURCES:
        x, rest = pair(tokenizer, source)
        ids = torch.tensor([x + rest[:1]])
        with torch.no_grad():
            _, cache = model(ids, torch.ones_like(ids))
        caches.append(cache.layers[-1].keys[0, :, len(x) : len(x) + model.prefix_length])
    assert (caches[0] - caches[1]).abs().max() > 1e-3


def test_padding_either_side_changes_nothing(infix):
    """Training batches are right-padded and prompts left-padded: each row as if alone."""
    model, tokenizer = infix
    pad = tokenizer.eos_token_id
    rows = [pair(tokenizer, s) for s in SOURCES]
    alone = []
    for x, rest in rows:
        ids = torch.tensor([x + rest])
        with torch.no_grad():
            alone.append(model(ids, torch.ones_like(ids))[0][0])
    width = max(len(x) + len(r) for x, r in rows)
    right = torch.tensor([x + r + [pad] * (width - len(x) - len(r)) for x, r in rows])
    mask = torch.tensor(
        [[1] * (len(x) + len(r)) + [0] * (width - len(x) - len(r)) for x, r in rows]
    )
    with torch.no_grad():
        batched, _ = model(right, mask)
    for i, (x, r) in enumerate(rows):
        torch.testing.assert_close(batched[i, : len(x) + len(r)], alone[i], atol=1e-4, rtol=0)
    prompts = [x + r[:1] for x, r in rows]
    width = max(map(len, prompts))
    left = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        logits, cache = model(left, mask)
        step, _ = model(
            torch.tensor([[r[1]] for _, r in rows]),
            torch.cat([mask, torch.ones_like(mask[:, :1])], 1),
            cache,
        )
    for i, (x, _) in enumerate(rows):
        torch.testing.assert_close(logits[i, -1], alone[i][len(x)], atol=1e-4, rtol=0)
        torch.testing.assert_close(step[i, -1], alone[i][len(x) + 1], atol=1e-4, rtol=0)


def test_the_authors_infix_trains_and_stores_its_pseudo_tokens():
    model, _ = build()
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "pseudo.weight" in trained and not any(n.startswith("base.") for n in trained)
    model.finalize()
    stored = model.stored_state()
    assert set(stored) == {"prefix", "pseudo_embeddings"}
    assert tuple(stored["pseudo_embeddings"].shape) == (3, model.base.config.hidden_size)
