"""Full fine-tuning: the base model itself, every parameter trainable."""

from __future__ import annotations

from transformers import PreTrainedModel

from bench.engine.adapted import AdaptedLM, BuildContext
from bench.methods.finetune.config import FinetuneSettings


class FinetunedLM(AdaptedLM):
    """`AdaptedLM`'s defaults train and store the whole base."""

    def __init__(
        self, base: PreTrainedModel, settings: FinetuneSettings, context: BuildContext
    ) -> None:
        base.requires_grad_(True)
        super().__init__(base)
