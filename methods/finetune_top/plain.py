"""FT-top as a user writes it without the harness: a transformers model with every parameter
frozen but the top k blocks and the final norm (the plain side `bench perf device` races the
harness against); the same modules as ours, by `top_modules`."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel

from bench.methods.finetune_top.config import FinetuneTopSettings
from bench.methods.finetune_top.model import top_modules


def plain_model(
    base: PreTrainedModel, settings: FinetuneTopSettings, derived: dict[str, Any]
) -> tuple[Any, str]:
    base.requires_grad_(False)
    for module in top_modules(base, settings.k):
        module.requires_grad_(True)
    return base, f"transformers, all but the top {settings.k} blocks and ln_f frozen"
