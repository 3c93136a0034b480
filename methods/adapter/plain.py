"""Adapter-tuning as a user gets it from the `adapters` library directly: the same bottleneck
config and width as ours (`derived`: the reduction factor our model derived from its share), the
plain side `bench perf device` races the harness against."""

from __future__ import annotations

import logging
from typing import Any

import adapters
from transformers import PreTrainedModel

from bench.methods.adapter.config import AdapterSettings
from bench.methods.adapter.model import CONFIGS


def plain_model(
    base: PreTrainedModel, settings: AdapterSettings, derived: dict[str, Any]
) -> tuple[Any, str]:
    adapters.init(base)
    factor = derived["reduction_factor"]
    base.add_adapter("plain", config=CONFIGS[settings.config](reduction_factor=factor))
    logger = logging.getLogger("adapters.model_mixin")
    level = logger.level
    logger.setLevel(logging.ERROR)  # it warns, wrongly, that no adapter is active
    try:
        base.train_adapter("plain")
    finally:
        logger.setLevel(level)
    return base, f"adapters library, {settings.config} bottleneck {derived['bottleneck']}"
