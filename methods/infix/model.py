"""Infix-tuning (the paper's section 7.2 ablation): trained activations between source and target.

The sequence becomes `[x; INFIX; y]`, where the separator that ends the source (the tokenizer's
eos, which ends every source) starts y's side. Two variants (`variant`):

- `authors` (the default), as the authors' code (`get_prompt_p5_infix`): L pseudo-tokens with
  trained input embeddings are read by the frozen model right after the source, so their
  activations depend on the input; to each layer's key/value activations of those L positions
  the reparametrization MLP's output (the same L x layers x 2 x d as a prefix's) is added; the
  separator and target continue from that cache. Stored: the L x layers x 2 x d offsets and the
  L x d pseudo-token embeddings.
- `fixed`: the same L x layers x 2 x d activations as prefix-tuning, independent of the input;
  they sit first in the cache, as a prefix's do, and a 4D attention mask hides them from the
  source tokens, so only the separator and the target attend to them; those tokens' positions
  count the infix.

Decoder-only models only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from bench.engine.adapted import BuildContext, Source
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
        self.variant = settings.variant
        self.pseudo: nn.Embedding | None = None
        if self.variant == "authors":  # nn.Embedding's N(0, 1) start, as the authors' wte2
            self.pseudo = nn.Embedding(settings.length, base.config.hidden_size)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: DynamicCache | None = None,
        source: Source | None = None,
    ) -> tuple[torch.Tensor, DynamicCache]:
        if self.variant == "authors":
            if cache is None:
                return self._read_source_then_infix(input_ids, attention_mask)
            return self._continue(input_ids, attention_mask, cache)
        return self._forward_fixed(input_ids, attention_mask, cache)

    # --- the authors' infix -------------------------------------------------------------------
    def _read_source_then_infix(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, DynamicCache]:
        """Two passes: the source x (left-aligned, then the L pseudo-tokens) with the MLP's
        offsets added to the pseudo-tokens' keys and values; then the separator and what
        follows it (right-padded). Rows may be left-padded (prompts) or right-padded (training
        pairs); the logits come back in the input's own layout."""
        if self.separator is None:
            raise RuntimeError("infix-tuning needs the tokenizer's eos as its separator")
        real = attention_mask.bool()
        source = (((input_ids == self.separator) & real).cumsum(-1) == 0) & real
        rest = real & ~source
        x_ids, x_mask = _packed(input_ids, source, self.separator, to_the_right=True)
        r_ids, r_mask = _packed(input_ids, rest, self.separator, to_the_right=False)
        rows, width = x_ids.shape
        embeds = torch.cat(
            [
                self.base.get_input_embeddings()(x_ids),
                self.pseudo.weight.unsqueeze(0).expand(rows, -1, -1),
            ],
            dim=1,
        )
        mask = torch.cat([x_mask, x_mask.new_ones(rows, self.prefix_length)], dim=1)
        first = self.base(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
        )
        cache = first.past_key_values
        offsets = self.sites["prefix"].tensor()  # [layers, 2, heads, L, head_dim]
        for layer, kv in zip(cache.layers, offsets, strict=True):
            layer.keys = torch.cat([layer.keys[:, :, :width], layer.keys[:, :, width:] + kv[0]], 2)
            layer.values = torch.cat(
                [layer.values[:, :, :width], layer.values[:, :, width:] + kv[1]], 2
            )
        cache.infix_at = width  # where the infix's columns go in later attention masks
        logits, cache = self._continue(r_ids, torch.cat([x_mask, r_mask], dim=1), cache)
        out = logits.new_zeros(*input_ids.shape, logits.shape[-1])
        out[source] = first.logits[:, :width][x_mask.bool()]
        out[rest] = logits[r_mask.bool()]
        return out, cache

    def _continue(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache: DynamicCache
    ) -> tuple[torch.Tensor, DynamicCache]:
        """New tokens after the infix; `attention_mask` covers the tokens only (x, the
        separator, what follows), and gains the infix's columns where the cache holds them."""
        at = cache.infix_at
        mask = torch.cat(
            [
                attention_mask[:, :at],
                attention_mask.new_ones(attention_mask.shape[0], self.prefix_length),
                attention_mask[:, at:],
            ],
            dim=1,
        )
        new = input_ids.shape[1]
        out = self.base(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, -new:],
            past_key_values=cache,
            use_cache=True,
        )
        return out.logits, out.past_key_values

    def export(self, folder: Path) -> None:
        """No library has an infix: the harness's own folder is written."""
        return None

    def stored_state(self) -> dict[str, torch.Tensor]:
        state = super().stored_state()
        if self.pseudo is not None:
            state["pseudo_embeddings"] = self.pseudo.weight.detach().contiguous()
        return state

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        if self.pseudo is not None:
            if "pseudo_embeddings" not in state:
                raise ValueError("stored state has no pseudo_embeddings for the authors' infix")
            self.pseudo.weight = nn.Parameter(
                state.pop("pseudo_embeddings").clone(), requires_grad=False
            )
        super().load_stored(state)

    # --- the fixed infix ----------------------------------------------------------------------
    def _forward_fixed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache: DynamicCache | None
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


def _packed(
    ids: torch.Tensor, keep: torch.Tensor, pad: int, to_the_right: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `keep` tokens of each row, in order, packed against the right edge (x, so the
    pseudo-tokens follow it directly) or the left edge (the separator's side), with their mask."""
    counts = keep.sum(-1)
    width = max(int(counts.max()), 1)
    rank = keep.long().cumsum(-1) - 1
    column = rank + (width - counts)[:, None] if to_the_right else rank
    rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(ids)
    packed = ids.new_full((ids.shape[0], width), pad)
    mask = ids.new_zeros((ids.shape[0], width))
    packed[rows[keep], column[keep]] = ids[keep]
    mask[rows[keep], column[keep]] = 1
    return packed, mask
