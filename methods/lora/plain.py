"""LoRA as a user gets it from PEFT directly: `LoraConfig` with the same rank, alpha, dropout
and target modules as ours (the plain side `bench perf device` races the harness against)."""

from __future__ import annotations

from typing import Any

from peft import LoraConfig, get_peft_model
from transformers import PreTrainedModel

from bench.methods.lora.config import LoraSettings


def plain_model(
    base: PreTrainedModel, settings: LoraSettings, derived: dict[str, Any]
) -> tuple[Any, str]:
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules) if settings.target_modules else None,
        fan_in_fan_out=True,  # GPT-2's Conv1D projections
    )
    return get_peft_model(base, config), f"peft LoraConfig (r {settings.rank}, PEFT's targets)"
