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
from torch import nn
from transformers import PreTrainedModel

from bench.engine.adapted import IGNORE, AdaptedLM, Batch, BuildContext, target_loss
from bench.methods.cocktail.config import CocktailSettings


class CocktailLM(AdaptedLM):
    def __init__(
        self, base: PreTrainedModel, settings: CocktailSettings, context: BuildContext
    ) -> None:
        if "teacher" not in context.dependencies:
            raise ValueError("a cocktail is built with its stored prefix-tuned teacher")
        super().__init__(base)
        base.requires_grad_(True)
        self.teacher = context.dependencies["teacher"].requires_grad_(False)
        self.beta = settings.beta

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
