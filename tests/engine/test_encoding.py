"""Batched encoding gives exactly the ids of encoding each example alone.

Training encodes all of its pairs with `encode_pairs` (one tokenizer call per chunk); its ids
must be `encode_pair`'s, or a faster run would train on different tokens.
"""

from __future__ import annotations

import copy

import pytest

from bench.engine import encoding
from bench.engine.encoding import encode_pair, encode_pairs, encode_source, encode_texts
from bench.engine.loading import load_model
from bench.spec.settings import TrainConfig

TEXTS = [
    "name : The Golden Crown | Type : pub | price : £20-25",
    " leading space",
    "  two leading spaces and trailing ones  ",
    "",
    " ",
    "tab\tand\nnewline",
    "unicode: café naïve Zürich — “quotes” 日本語 🍕 Ελληνικά",
    "Aarhus : leaderName : Jacob_Bundsgaard | Aarhus_Airport : cityServed : Aarhus",
    "a long text that will not fit in eight tokens once it is encoded, far from it " * 5,
]
PAIRS = [(s, t) for s in TEXTS for t in TEXTS[::-1][:4]]


@pytest.fixture(scope="module")
def gpt2_style():
    """The mini LM's tokenizer: its bos is its eos, as GPT-2's."""
    tokenizer = load_model("mini-tiny", seed=0).tokenizer
    assert tokenizer.is_fast and tokenizer.bos_token_id == tokenizer.eos_token_id
    return tokenizer


@pytest.fixture(scope="module")
def bart_style(gpt2_style):
    """The same vocabulary with a bos of its own, as BART's `<s>`: every text starts with it."""
    tokenizer = copy.deepcopy(gpt2_style)
    tokenizer.add_special_tokens({"bos_token": "<s>"})
    assert tokenizer.bos_token_id != tokenizer.eos_token_id
    return tokenizer


@pytest.mark.parametrize("style", ["gpt2_style", "bart_style"])
@pytest.mark.parametrize("limits", [(512, 128), (8, 8), (12, 9)])
@pytest.mark.parametrize("decoder_start", [None, 7])
def test_batched_pairs_are_the_pairs_encoded_one_by_one(
    request, monkeypatch, style, limits, decoder_start
):
    tokenizer = request.getfixturevalue(style)
    monkeypatch.setattr(encoding, "CHUNK", 5)  # several chunks, the last one partial
    config = TrainConfig(max_source_tokens=limits[0], max_target_tokens=limits[1])
    one_by_one = [encode_pair(tokenizer, s, t, config, decoder_start) for s, t in PAIRS]
    assert encode_pairs(tokenizer, PAIRS, config, decoder_start) == one_by_one
    if limits[0] == 8:  # truncation happened, and kept the frame
        src = one_by_one[-1][0] if decoder_start is not None else one_by_one[-1][1][:8]
        assert len(src) == 8 and src[-1] == tokenizer.eos_token_id


@pytest.mark.parametrize("style", ["gpt2_style", "bart_style"])
def test_batched_texts_are_the_sources_encoded_one_by_one(request, style):
    tokenizer = request.getfixturevalue(style)
    expected = [encode_source(tokenizer, text, 10) for text in TEXTS]
    assert encode_texts(tokenizer, TEXTS, 10) == expected
    has_bos = style == "bart_style"
    assert all((row[0] == tokenizer.bos_token_id) == has_bos for row in expected)
    twice = encode_texts(tokenizer, ["same", "same"], 10)  # tokenized once, yet two lists
    assert twice[0] == twice[1] and twice[0] is not twice[1]
    assert encode_texts(tokenizer, [], 10) == []
    assert encode_pairs(tokenizer, [], TrainConfig()) == []
