"""Ensemble (Hewitt et al., 2021): mix a prefix-tuned and a fully fine-tuned model while decoding.

At every step of beam search the next-token distribution is a mixture of the two models' (same
task, model, seed and training size): `lam * p_prefix + (1 - lam) * p_finetune` by default, or
the renormalized log-linear mixture `p_prefix^lam * p_finetune^(1 - lam)` with `mix: loglinear`.
Both models come from their stored cells, which the grid runs first; this cell trains nothing
and stores nothing of its own, but needs both checkpoints to decode, so its stored count is
theirs.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel

from bench.engine.adapted import AdaptedLM, BuildContext, Scorer
from bench.methods.ensemble.config import EnsembleSettings


class MixtureScorer:
    """Beam search's scorer over two models: each keeps its own cache, the beam is shared."""

    def __init__(self, first: Scorer, second: Scorer, lam: float, mix: str) -> None:
        self.scorers = (first, second)
        self.lam, self.mix = lam, mix

    def _mix(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        if self.mix == "loglinear":
            return torch.log_softmax(self.lam * first + (1 - self.lam) * second, dim=-1)
        weights = torch.tensor([self.lam, 1 - self.lam], device=first.device).log()
        # log(lam p1 + (1 - lam) p2); a weight of 0 gives exactly the other model's logprobs.
        return torch.logsumexp(torch.stack([first + weights[0], second + weights[1]]), dim=0)

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._mix(*(s.prefill(input_ids, attention_mask) for s in self.scorers))

    def expand(self, times: int) -> None:
        for scorer in self.scorers:
            scorer.expand(times)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._mix(*(s.step(tokens) for s in self.scorers))

    def reorder(self, rows: torch.Tensor) -> None:
        for scorer in self.scorers:
            scorer.reorder(rows)


class EnsembleLM(AdaptedLM):
    """Built from the two stored cells (`context.dependencies`); `base` is not used."""

    def __init__(
        self, base: PreTrainedModel, settings: EnsembleSettings, context: BuildContext
    ) -> None:
        if set(context.dependencies) != {"prefix", "finetune"}:
            raise ValueError("an ensemble is built from its stored prefix and finetune cells")
        prefix, finetuned = context.dependencies["prefix"], context.dependencies["finetune"]
        super().__init__(finetuned.base)
        self.prefix_model, self.finetuned = prefix, finetuned
        self.requires_grad_(False)
        self.lam, self.mix = settings.lam, settings.mix

    def scorer(self) -> MixtureScorer:
        return MixtureScorer(
            self.prefix_model.scorer(), self.finetuned.scorer(), self.lam, self.mix
        )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("an ensemble has no single forward; it decodes through its scorer")

    def parts(self) -> dict[str, AdaptedLM]:
        return {"prefix": self.prefix_model, "finetune": self.finetuned}

    def stored_state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError("an ensemble stores nothing of its own")
