"""Model specs (`bench.spec.model_specs`) -> (model, tokenizer), loaded with transformers."""

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
from bench.mini.config import MINI_LMS
from bench.mini.lm import checkpoint_dir
from bench.spec.model_specs import (
    ARCHITECTURES,
    BART_ARCHITECTURES,
    RANDOM_PREFIX,
    checkpoint_id,
    random_architecture,
)


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
    return GPT2Config(vocab_size=50257, n_positions=1024, **ARCHITECTURES[arch])


def model_class(config: PretrainedConfig) -> type:
    """Seq2seq LMs (BART) and causal LMs (GPT-2) have different auto classes."""
    return AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM


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


def hub_window(spec: str) -> tuple[int, bool]:
    """(positions, is encoder-decoder) of a hub model, from its config."""
    config = AutoConfig.from_pretrained(spec)
    positions = getattr(config, "n_positions", None) or config.max_position_embeddings
    return positions, bool(config.is_encoder_decoder)


def tokenizer_of(spec: str) -> PreTrainedTokenizerBase:
    """The tokenizer a cell of `spec` encodes with (random weights use the mini-tiny one)."""
    if spec in MINI_LMS:
        return AutoTokenizer.from_pretrained(checkpoint_dir(spec))
    if random_architecture(spec) is not None:
        return AutoTokenizer.from_pretrained(checkpoint_dir("mini-tiny"))
    return AutoTokenizer.from_pretrained(spec)


def load_model(spec: str, seed: int) -> LoadedModel:
    if spec in MINI_LMS:
        path = checkpoint_dir(spec)
        return LoadedModel(
            AutoModelForCausalLM.from_pretrained(path), tokenizer_of(spec), checkpoint_id(spec)
        )
    arch = random_architecture(spec)
    if arch is not None:
        config = architecture_config(arch)
        torch.manual_seed(seed)
        return LoadedModel(model_class(config).from_config(config), tokenizer_of(spec), spec)
    check_available(spec)
    auto = model_class(AutoConfig.from_pretrained(spec))
    return LoadedModel(auto.from_pretrained(spec), AutoTokenizer.from_pretrained(spec), spec)


def planning_config(spec: str) -> tuple[PretrainedConfig, str | None]:
    """The config of any model spec, without its weights, and a note when it is not the spec's
    own: a hub model whose config cannot be read here is planned with the published
    architecture of the same name (gpt2-medium, facebook/bart-large, ...)."""
    if spec in MINI_LMS:
        return AutoConfig.from_pretrained(checkpoint_dir(spec)), None
    arch = random_architecture(spec)
    if arch is not None:
        return architecture_config(arch), None
    try:
        return AutoConfig.from_pretrained(spec), None
    except (OSError, ValueError):
        name = spec.rstrip("/").rsplit("/", 1)[-1]
        if name not in ARCHITECTURES and name not in BART_ARCHITECTURES:
            raise UserError(
                f"model {spec!r}: its config cannot be read here and it is no published GPT-2 or "
                "BART size; download it, pass a local path, or plan with --model random:ARCH"
            ) from None
        return architecture_config(name), f"{spec}'s config unreadable here: the published {name}"


def meta_model(spec: str) -> PreTrainedModel:
    """The model of a `random:` spec on the meta device: shapes without memory, for counting."""
    if not spec.startswith(RANDOM_PREFIX):
        raise UserError(
            f"parameter counts need a built-in config such as random:gpt2-medium, not {spec!r}"
        )
    return meta_of(planning_config(spec)[0])


def meta_of(config: PretrainedConfig) -> PreTrainedModel:
    """A model of `config` on the meta device."""
    with torch.device("meta"):
        return model_class(config).from_config(config)
