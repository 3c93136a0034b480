"""Cocktail fine-tuning (Hewitt et al., 2021): fine-tuning distilled from a prefix-tuned teacher.

All parameters are trained, as in full fine-tuning, on the loss
`cross-entropy + beta * KL(p_teacher || p_model)`, the KL taken over the next-token distribution
at every target position of the (in-distribution) training data. The teacher is the prefix-tuned
model of the same task, model, seed and training size, loaded from its stored cell and kept
frozen and in eval mode (no dropout, so it draws no random numbers: with beta = 0 training is
exactly fine-tuning for the same seed). The whole model is stored, as for fine-tuning.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn
from transformers import PreTrainedModel

from bench.adapted import (
    IGNORE,
    AdaptedLM,
    Batch,
    BuildContext,
    Dependency,
    Method,
    MethodSettings,
    target_loss,
)
from bench.registry import METHODS


class CocktailSettings(MethodSettings):
    beta: float = Field(1.0, ge=0, description="weight of the distillation (KL) term")
    teacher: Dependency = Field(default_factory=Dependency, description="the prefix-tuned cell")


class CocktailLM(AdaptedLM):
    def __init__(self, base: PreTrainedModel, teacher: AdaptedLM, beta: float) -> None:
        super().__init__(base)
        base.requires_grad_(True)
        self.teacher = teacher.requires_grad_(False)
        self.beta = beta

    def train(self, mode: bool = True) -> CocktailLM:
        super().train(mode)
        self.teacher.eval()
        return self

    def training_loss(self, batch: Batch) -> torch.Tensor:
        logits, _ = self(batch.input_ids, batch.attention_mask, source=batch.source)
        loss = target_loss(logits, batch.labels)
        if self.beta == 0:
            return loss
        with torch.no_grad():
            teacher_logits, _ = self.teacher(
                batch.input_ids, batch.attention_mask, source=batch.source
            )
        target = batch.labels[:, 1:] != IGNORE
        student = torch.log_softmax(logits[:, :-1][target].float(), dim=-1)
        teacher = torch.log_softmax(teacher_logits[:, :-1][target].float(), dim=-1)
        kl = nn.functional.kl_div(student, teacher, log_target=True, reduction="batchmean")
        return loss + self.beta * kl


@METHODS.register("cocktail")
class Cocktail(Method):
    Settings = CocktailSettings
    description = "cocktail: full fine-tuning plus KL to the prefix-tuned teacher (weight beta)"

    def dependencies(self, settings: CocktailSettings) -> dict[str, tuple[str, Dependency]]:
        return {"teacher": ("prefix", settings.teacher)}

    def build(
        self,
        base: PreTrainedModel,
        settings: CocktailSettings,
        context: BuildContext | None = None,
    ) -> AdaptedLM:
        if context is None or "teacher" not in context.dependencies:
            raise ValueError("a cocktail is built with its stored prefix-tuned teacher")
        return CocktailLM(base, context.dependencies["teacher"], settings.beta)
