"""Model specs -> (model, tokenizer).

A spec is one of:
- `mini`, `mini-tiny`: the embedded LM, pretrained on the mini world on first use (the default);
- `random:ARCH`: a built-in architecture config (`random:gpt2-medium`, `random:bart-large`) with
  random weights, for smoke runs and parameter counts; it borrows the mini tokenizer, whose ids
  fit any GPT-2 or BART vocab;
- anything else: a hub id or local path, loaded with transformers where the user has the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    GPT2Config,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from bench.errors import UserError
from bench.mini.lm import MINI_LMS, ensure_pretrained
from bench.progress import Progress

RANDOM_PREFIX = "random:"

# GPT-2 family sizes as published with the checkpoints (vocab 50257, 1024 positions).
ARCHITECTURES: dict[str, dict[str, int]] = {
    "gpt2": {"n_layer": 12, "n_embd": 768, "n_head": 12},
    "gpt2-medium": {"n_layer": 24, "n_embd": 1024, "n_head": 16},
    "gpt2-large": {"n_layer": 36, "n_embd": 1280, "n_head": 20},
    "gpt2-xl": {"n_layer": 48, "n_embd": 1600, "n_head": 25},
}
# BART sizes as published with facebook/bart-base and facebook/bart-large (vocab 50265).
BART_ARCHITECTURES: dict[str, dict[str, int]] = {
    "bart-base": {"d_model": 768, "layers": 6, "heads": 12, "ffn": 3072},
    "bart-large": {"d_model": 1024, "layers": 12, "heads": 16, "ffn": 4096},
}


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    checkpoint: str  # what exactly was loaded, recorded with every cell


def architecture_config(arch: str) -> PretrainedConfig:
    if arch in BART_ARCHITECTURES:
        size = BART_ARCHITECTURES[arch]
        return BartConfig(
            vocab_size=50265,
            max_position_embeddings=1024,
            d_model=size["d_model"],
            encoder_layers=size["layers"],
            decoder_layers=size["layers"],
            encoder_attention_heads=size["heads"],
            decoder_attention_heads=size["heads"],
            encoder_ffn_dim=size["ffn"],
            decoder_ffn_dim=size["ffn"],
        )
    if arch not in ARCHITECTURES:
        valid = ", ".join(sorted([*ARCHITECTURES, *BART_ARCHITECTURES]))
        raise UserError(f"unknown architecture {arch!r} in 'random:{arch}'; valid: {valid}")
    return GPT2Config(vocab_size=50257, n_positions=1024, **ARCHITECTURES[arch])


def model_class(config: PretrainedConfig) -> type:
    """Seq2seq LMs (BART) and causal LMs (GPT-2) have different auto classes."""
    return AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM


def checkpoint_id(spec: str) -> str:
    """A stable name for what `spec` loads, without loading it; part of each cell's identity."""
    if spec in MINI_LMS:
        return MINI_LMS[spec].checkpoint_id(spec)
    if spec.startswith(RANDOM_PREFIX):
        architecture_config(spec[len(RANDOM_PREFIX) :])
        return spec
    return spec


def check_available(spec: str) -> None:
    """Fail fast, before any cell runs, when a hub id or path cannot be loaded."""
    if spec in MINI_LMS or spec.startswith(RANDOM_PREFIX):
        checkpoint_id(spec)
        return
    try:
        AutoConfig.from_pretrained(spec)
    except (OSError, ValueError) as error:
        raise UserError(
            f"model {spec!r} cannot be loaded (no local copy, and the hub is unreachable or does "
            f"not have it: {str(error).splitlines()[0]}); download its weights, pass a local path, "
            f"or use --model mini or --model random:ARCH"
        ) from None


def load_model(spec: str, seed: int, progress: Progress | None = None) -> LoadedModel:
    if spec in MINI_LMS:
        path = ensure_pretrained(spec, progress)
        return LoadedModel(
            AutoModelForCausalLM.from_pretrained(path),
            AutoTokenizer.from_pretrained(path),
            checkpoint_id(spec),
        )
    if spec.startswith(RANDOM_PREFIX):
        config = architecture_config(spec[len(RANDOM_PREFIX) :])
        torch.manual_seed(seed)
        tokenizer = AutoTokenizer.from_pretrained(ensure_pretrained("mini-tiny", progress))
        return LoadedModel(model_class(config).from_config(config), tokenizer, spec)
    check_available(spec)
    auto = model_class(AutoConfig.from_pretrained(spec))
    return LoadedModel(auto.from_pretrained(spec), AutoTokenizer.from_pretrained(spec), spec)


def meta_model(spec: str) -> PreTrainedModel:
    """The model of a `random:` spec on the meta device: shapes without memory, for counting."""
    if not spec.startswith(RANDOM_PREFIX):
        raise UserError(
            f"parameter counts need a built-in config such as random:gpt2-medium, not {spec!r}"
        )
    config = architecture_config(spec[len(RANDOM_PREFIX) :])
    with torch.device("meta"):
        return model_class(config).from_config(config)
