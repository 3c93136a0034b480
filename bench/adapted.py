"""The contract between methods and the engine: an adapted causal LM.

A method (in `methods/`) wraps a base model into an `AdaptedLM`. The training loop and the
decoder only talk to this interface, so a method decides what is trained (`requires_grad`), what
is stored after training (`stored_state`), and what the model sees before the input (a prefix of
key/value activations, for prefix-tuning), while position handling, padding and caching live here
once.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from transformers import DynamicCache, PreTrainedModel


class MethodSettings(BaseModel):
    """Base of every method's settings: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AdaptedLM(nn.Module):
    """A causal LM plus a method's parameters. The default trains and stores the whole base."""

    def __init__(self, base: PreTrainedModel) -> None:
        super().__init__()
        self.base = base

    # --- what the method trains and stores -------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def finalize(self) -> None:
        """Called once after training: drop what only training needs (e.g. a reparametrization)."""

    def stored_state(self) -> dict[str, torch.Tensor]:
        """The tensors a user must keep to reproduce this model on top of the public base."""
        return {name: p.detach() for name, p in self.base.named_parameters()}

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.base.load_state_dict(state, strict=False)
        tied = {k for k in missing if k.endswith("lm_head.weight")}
        if set(missing) - tied or unexpected:
            raise ValueError(
                f"stored state does not fit: missing {missing}, unexpected {unexpected}"
            )

    # --- what the model sees before the input ----------------------------------------------
    prefix_length: int = 0

    def prefix_cache(self, batch_size: int) -> DynamicCache:
        """The key/value cache every sequence starts from: empty unless a method adds a prefix."""
        return DynamicCache()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: DynamicCache | None = None,
    ) -> tuple[torch.Tensor, DynamicCache]:
        """Logits for `input_ids`, continuing `cache` (a fresh prefix cache when None).

        `attention_mask` covers every token seen so far (cached and new), not the prefix: the
        prefix is always attended to. Positions count real tokens only, so left padding is
        harmless, and start after the prefix, as in the paper's code (GPT-2 numbered positions
        from the past length).
        """
        if cache is None:
            cache = self.prefix_cache(input_ids.shape[0])
        prefix_mask = attention_mask.new_ones(attention_mask.shape[0], self.prefix_length)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0) + self.prefix_length
        out = self.base(
            input_ids=input_ids,
            attention_mask=torch.cat([prefix_mask, attention_mask], dim=1),
            position_ids=positions[:, -input_ids.shape[1] :],
            past_key_values=cache,
            use_cache=True,
        )
        return out.logits, out.past_key_values


class Method:
    """A registered method: its settings model and how it wraps a base model."""

    Settings: ClassVar[type[MethodSettings]] = MethodSettings
    description: ClassVar[str] = ""

    def build(self, base: PreTrainedModel, settings: MethodSettings) -> AdaptedLM:
        raise NotImplementedError


def count(parameters: list[nn.Parameter] | dict[str, torch.Tensor]) -> int:
    tensors = parameters.values() if isinstance(parameters, dict) else parameters
    return sum(t.numel() for t in tensors)
