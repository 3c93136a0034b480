"""Methods built as the tests need them: by registered name on a given base model, or on a
freshly loaded mini LM, and a tiny random BART that reads the mini tokenizer's ids."""

from __future__ import annotations

import torch
from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerBase

from bench.engine.adapted import AdaptedLM, BuildContext, build_method
from bench.engine.loading import load_model
from bench.spec.registry import METHODS


def build(method: str, base, context: BuildContext | None = None, **settings) -> AdaptedLM:
    """The registered `method` with `settings` around `base` (a transformers model)."""
    factory = METHODS.get(method)
    return build_method(factory, base, factory.Settings(**settings), context)


def build_on_mini(
    method: str,
    *,
    seed: int | None = 0,
    context: BuildContext | None = None,
    lm: str = "mini-tiny",
    **settings,
) -> tuple[AdaptedLM, PreTrainedTokenizerBase]:
    """`method` on a freshly loaded `lm`, and its tokenizer. A method's new parameters start from
    the global generator: `torch.manual_seed(seed)` just before the build, none where `seed` is
    None. The context is the tokenizer's (as a cell builds it) unless one is given."""
    loaded = load_model(lm, seed=0)
    if seed is not None:
        torch.manual_seed(seed)
    context = context or BuildContext(loaded.tokenizer)
    return build(method, loaded.model, context, **settings), loaded.tokenizer


def tiny_bart(tokenizer, seed: int = 0) -> BartForConditionalGeneration:
    """A random two-layer BART over the mini tokenizer's ids, standing in for bart-large."""
    eos = tokenizer.eos_token_id
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        pad_token_id=1,
        bos_token_id=eos,
        eos_token_id=eos,
        decoder_start_token_id=eos,
        forced_eos_token_id=None,
    )
    torch.manual_seed(seed)
    return BartForConditionalGeneration(config).eval()
