"""Full fine-tuning: every base parameter is trained and the whole model is stored."""

from __future__ import annotations

from transformers import PreTrainedModel

from bench.adapted import AdaptedLM, BuildContext, Method, MethodSettings
from bench.registry import METHODS


class FinetuneSettings(MethodSettings):
    pass


@METHODS.register("finetune")
class Finetune(Method):
    Settings = FinetuneSettings
    description = "full fine-tuning: all parameters trained and stored"

    def build(
        self, base: PreTrainedModel, settings: FinetuneSettings, context: BuildContext | None = None
    ) -> AdaptedLM:
        base.requires_grad_(True)
        return AdaptedLM(base)
