"""Prefix-tuning as a user gets it from a library: PEFT's `PrefixTuningConfig` with the MLP
reparametrization (`prefix_projection`), the same length and hidden size as ours (the plain
side `bench perf device` races the harness against)."""

from __future__ import annotations

from typing import Any

from peft import PrefixTuningConfig, get_peft_model
from transformers import PreTrainedModel

from bench.methods.prefix.config import PrefixSettings


def plain_model(
    base: PreTrainedModel, settings: PrefixSettings, derived: dict[str, Any]
) -> tuple[Any, str]:
    config = PrefixTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=settings.length,
        prefix_projection=not settings.flat,
        encoder_hidden_size=settings.mlp_hidden,
    )
    what = f"peft PrefixTuningConfig (length {settings.length}, MLP {settings.mlp_hidden})"
    return get_peft_model(base, config), what
