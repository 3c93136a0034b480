"""Infix-tuning (the paper's section 7.2 ablation): trained activations between source and target.

The sequence becomes `[x; INFIX; y]`: the same L x layers x 2 x d activations as prefix-tuning
(same MLP reparametrization, same storage), but only the separator that ends the source and the
target tokens attend to them, and those tokens' positions count the infix. The activations sit
first in the cache, as a prefix's do; a 4D attention mask hides them from the source tokens.
The separator is the tokenizer's eos, which ends every source. Decoder-only models only.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PreTrainedModel

from bench.adapted import BuildContext, Source
from bench.errors import UserError
from bench.methods.infix.config import InfixSettings
from bench.methods.prefix.model import PrefixLM


class InfixLM(PrefixLM):
    def __init__(
        self, base: PreTrainedModel, settings: InfixSettings, context: BuildContext
    ) -> None:
        if base.config.is_encoder_decoder:
            raise UserError("infix-tuning is for decoder-only models")
        super().__init__(base, settings, context)
        tokenizer = context.tokenizer
        self.separator = tokenizer.eos_token_id if tokenizer is not None else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: DynamicCache | None = None,
        source: Source | None = None,
    ) -> tuple[torch.Tensor, DynamicCache]:
        length = self.prefix_length
        if cache is None:  # a fresh sequence: tokens see the infix from the separator on
            if self.separator is None:
                raise RuntimeError("infix-tuning needs the tokenizer's eos as its separator")
            sep = (input_ids == self.separator) & attention_mask.bool()
            sees = sep.cumsum(-1) > 0
            cache = self.prefix_cache(input_ids.shape[0])
        else:
            sees = torch.ones_like(input_ids, dtype=torch.bool)
        total, new = attention_mask.shape[1], input_ids.shape[1]
        causal = (
            torch.arange(total, device=input_ids.device)[None, :]
            <= torch.arange(total - new, total, device=input_ids.device)[:, None]
        )
        visible = torch.cat(
            [
                sees[:, :, None].expand(-1, -1, length),
                causal[None] & attention_mask[:, None, :].bool(),
            ],
            dim=-1,
        )
        dtype = self.base.dtype
        mask = torch.zeros(visible.shape, dtype=dtype, device=input_ids.device)
        mask = mask.masked_fill(~visible, torch.finfo(dtype).min)[:, None]
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -new:] + length * sees
        out = self.base(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        )
        return out.logits, out.past_key_values

