"""Full fine-tuning as a user writes it without the harness: a transformers model, every
parameter trained (the plain side `bench perf device` races the harness against)."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel

from bench.methods.finetune.config import FinetuneSettings


def plain_model(
    base: PreTrainedModel, settings: FinetuneSettings, derived: dict[str, Any]
) -> tuple[Any, str]:
    return base.requires_grad_(True), "transformers, every parameter trained"
