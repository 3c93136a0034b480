"""Prefix-tuning (Li & Liang, 2021), as in the paper and its code, for GPT-2 and BART.

A prefix of `length` positions is prepended to the key/value activations of every attention
layer; the base model stays frozen. During training the activations come from a
reparametrization, Embedding(L, d) -> Linear(d, h) -> tanh -> Linear(h, layers x 2 x d), because
optimizing them directly is unstable (paper section 4.3); `flat` optimizes them directly instead.
After training the MLP is discarded and only the L x layers x 2 x d activations are stored.

Encoder-decoder models get three prefixes, each with its own MLP, as the paper's BART code does:
one for the encoder's self-attention, one for the decoder's self-attention and one for the
decoder's cross-attention. PEFT's prefix tuning only prefixes BART's decoder, and the `adapters`
library injects its prefix inside attention, so GPT-2 would number positions from 0 rather than
after the prefix as the paper's code did; hence our own module, through the key/value cache.
BART's decoder, in the paper's code, numbered its positions from 0 whatever the prefix, so ours
does too.

The frozen base's dropout follows the authors (`base_dropout` unset): off while a GPT-2 prefix
trains (their trainer keeps GPT-2 in eval mode unless `use_dropout`), on for BART (their
Lightning trainer puts the whole module, BART included, in train mode). The prefix itself has
no dropout (their `prefix_dropout` defaults to 0).

`init: words` starts the prefix from the activations of real words (`init_text`, the paper's
low-data trick, section 7.2): the frozen model reads the text and the MLP is fitted to its
key/value activations as in the paper's code (500 Adam steps at lr 1e-4 on the squared error); a
flat prefix copies them. A text of more than `length` tokens sets the length (the authors' code
set L to the text's token count), a shorter one is repeated to `length`; the cell records the
length used. The authors' BART code has no working word init; ours lets BART read the words in
its encoder and decoder, and each of the three prefixes starts from its own attention's keys and
values of them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, EncoderDecoderCache, PreTrainedModel

from bench.engine.adapted import AdaptedLM, BuildContext, Export
from bench.errors import UserError
from bench.methods.prefix.config import PrefixSettings

INIT_STEPS, INIT_LR = 500, 1e-4


class Activations(nn.Module):
    """The trained key/value activations of one kind of attention, in the paper's layout."""

    def __init__(
        self, length: int, layers: int, heads: int, d_model: int, hidden: int, flat: bool
    ) -> None:
        super().__init__()
        self.shape = (length, layers, 2, heads, d_model // heads)
        width = layers * 2 * d_model
        self.mlp: nn.Module | None = None
        self.flat: nn.Parameter | None = None
        if flat:
            self.flat = nn.Parameter(0.02 * torch.randn(length, width))
        else:
            self.mlp = nn.Sequential(
                nn.Embedding(length, d_model),
                nn.Linear(d_model, hidden),
                nn.Tanh(),
                nn.Linear(hidden, width),
            )

    def _rows(self) -> torch.Tensor:
        if self.mlp is None:
            return self.flat
        return self.mlp(torch.arange(self.shape[0], device=self.mlp[0].weight.device))

    def tensor(self) -> torch.Tensor:
        """[layers, 2, heads, L, head_dim]: layer-major, then key/value, as in the paper."""
        return self._rows().view(self.shape).permute(1, 2, 3, 0, 4)

    def _set(self, kv: torch.Tensor) -> None:
        rows = kv.permute(3, 0, 1, 2, 4).reshape(self.shape[0], -1)
        self.flat = nn.Parameter(rows.detach().clone(), requires_grad=False)
        self.mlp = None

    def finalize(self) -> None:
        if self.mlp is not None:
            with torch.no_grad():
                self._set(self.tensor())

    def load(self, kv: torch.Tensor) -> None:
        length, layers, two, heads, head_dim = self.shape
        expected = (layers, two, heads, length, head_dim)
        if tuple(kv.shape) != expected:
            raise ValueError(f"stored prefix has shape {tuple(kv.shape)}, expected {expected}")
        self._set(kv)

    def fit(self, kv: torch.Tensor) -> None:
        """Start from `kv`: copied into a flat prefix, or regressed by the MLP."""
        if self.mlp is None:
            with torch.no_grad():
                self.flat.copy_(kv.permute(3, 0, 1, 2, 4).reshape(self.shape[0], -1))
            return
        optimizer = torch.optim.Adam(self.mlp[1:].parameters(), lr=INIT_LR)
        for _ in range(INIT_STEPS):
            loss = nn.functional.mse_loss(self.tensor(), kv)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


def layer_cache(kv: torch.Tensor, batch_size: int) -> DynamicCache:
    """A cache holding `kv` ([layers, 2, heads, L, head_dim]) for every row. Under autocast
    (bf16, fp16) it holds them in that precision, as the keys and values the model appends:
    a stored prefix is fp32, and a cache of mixed precision would be promoted to fp32 whole."""
    device = kv.device.type
    if torch.is_autocast_enabled(device):
        kv = kv.to(torch.get_autocast_dtype(device))
    cache = DynamicCache()
    for layer in range(kv.shape[0]):
        key, value = (kv[layer, i].unsqueeze(0).expand(batch_size, -1, -1, -1) for i in (0, 1))
        cache.update(key, value, layer)
    return cache


def word_ids(tokenizer: Any, text: str) -> list[int]:
    if tokenizer is None:
        raise UserError("init: words needs the model's tokenizer")
    ids = tokenizer.encode(text, add_special_tokens=False)
    if not ids:
        raise UserError(f"prefix init_text {text!r} has no tokens")
    return ids


@torch.no_grad()
def words_activations(base: PreTrainedModel, ids: list[int]) -> dict[str, torch.Tensor]:
    """Site -> [layers, 2, heads, L, head_dim]: the frozen model's own keys and values as it
    reads the words. BART reads them in its encoder (the encoder prefix: its self-attention's
    keys and values; the cross prefix: the decoder's keys and values of that encoding) and in
    its decoder (the decoder prefix)."""
    device = next(base.parameters()).device
    words = torch.tensor([ids], device=device)

    def stacked(cache: DynamicCache) -> torch.Tensor:
        layers = cache.layers
        return torch.stack([torch.stack([layer.keys[0], layer.values[0]]) for layer in layers])

    if not base.config.is_encoder_decoder:
        return {"prefix": stacked(base(input_ids=words, use_cache=True).past_key_values)}
    heads = base.config.encoder_attention_heads
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        captured.append(out[0].view(out.shape[1], heads, -1).transpose(0, 1))

    hooks = [
        projection.register_forward_hook(keep)
        for layer in base.get_encoder().layers
        for projection in (layer.self_attn.k_proj, layer.self_attn.v_proj)
    ]
    try:
        out = base(input_ids=words, decoder_input_ids=words, use_cache=True)
    finally:
        for hook in hooks:
            hook.remove()
    cache = out.past_key_values
    return {
        "encoder_prefix": torch.stack(captured).view(-1, 2, *captured[0].shape),
        "decoder_prefix": stacked(cache.self_attention_cache),
        "cross_prefix": stacked(cache.cross_attention_cache),
    }


class PrefixLM(AdaptedLM):
    def __init__(
        self, base: PreTrainedModel, settings: PrefixSettings, context: BuildContext
    ) -> None:
        super().__init__(base)
        base.requires_grad_(False)
        self.base_dropout = settings.resolved_base_dropout(self.is_encoder_decoder)
        words = None
        if settings.init == "words":
            words = word_ids(context.tokenizer, settings.init_text)
        # A longer init text sets the length, as the authors' code did; a shorter one repeats.
        self.prefix_length = settings.length if words is None else max(settings.length, len(words))
        self.init_tokens = None if words is None else len(words)
        config = base.config

        def site(layers: int, heads: int, d_model: int) -> Activations:
            return Activations(
                self.prefix_length, layers, heads, d_model, settings.mlp_hidden, settings.flat
            )

        if not self.is_encoder_decoder:
            self.sites = nn.ModuleDict(
                {
                    "prefix": site(
                        config.num_hidden_layers, config.num_attention_heads, config.hidden_size
                    )
                }
            )
        else:
            d = config.d_model
            self.cross_prefix_length = self.prefix_length
            self.sites = nn.ModuleDict(
                {
                    "encoder_prefix": site(
                        config.encoder_layers, config.encoder_attention_heads, d
                    ),
                    "decoder_prefix": site(
                        config.decoder_layers, config.decoder_attention_heads, d
                    ),
                    "cross_prefix": site(config.decoder_layers, config.decoder_attention_heads, d),
                }
            )
        if words is not None:  # before the hooks below: the base reads the words plainly
            repeated = (words * math.ceil(self.prefix_length / len(words)))[: self.prefix_length]
            for name, kv in words_activations(base, repeated).items():
                self.sites[name].fit(kv)
        if self.is_encoder_decoder:
            self._encoder_cache: DynamicCache | None = None
            for layer in base.get_encoder().layers:
                layer.self_attn.register_forward_pre_hook(self._prefix_encoder, with_kwargs=True)
            base.get_decoder().embed_positions.register_forward_pre_hook(
                self._decoder_positions_from_zero, with_kwargs=True
            )

    # --- the prefix in the cache ------------------------------------------------------------
    def prefix_cache(self, batch_size: int) -> DynamicCache | EncoderDecoderCache:
        if not self.is_encoder_decoder:
            return layer_cache(self.sites["prefix"].tensor(), batch_size)
        cache = EncoderDecoderCache(
            layer_cache(self.sites["decoder_prefix"].tensor(), batch_size),
            layer_cache(self.sites["cross_prefix"].tensor(), batch_size),
        )
        # The encoder's keys are still to be appended after the cross-attention prefix.
        cache.is_updated = dict.fromkeys(cache.is_updated, False)
        return cache

    # --- encoder-decoder: the encoder prefix and the decoder positions ---------------------
    def encode(self, source_ids: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        self._encoder_cache = layer_cache(
            self.sites["encoder_prefix"].tensor(), source_ids.shape[0]
        )
        try:
            return super().encode(source_ids, source_mask)
        finally:
            self._encoder_cache = None

    def _prefix_encoder(
        self, module: nn.Module, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[tuple, dict[str, Any]]:
        """Each encoder self-attention continues a cache that holds its prefix; the 4D padding
        mask gains the prefix's columns, always visible."""
        kwargs["past_key_values"] = self._encoder_cache
        mask = kwargs.get("attention_mask")
        if mask is not None:
            visible = True if mask.dtype == torch.bool else 0.0
            columns = mask.new_full((*mask.shape[:-1], self.prefix_length), visible)
            kwargs["attention_mask"] = torch.cat([columns, mask], dim=-1)
        return args, kwargs

    def _decoder_positions_from_zero(
        self, module: nn.Module, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[tuple, dict[str, Any]]:
        """BART numbers decoder positions from the cache length, which includes the prefix."""
        if kwargs.get("position_ids") is not None:
            kwargs["position_ids"] = kwargs["position_ids"] - self.prefix_length
        return args, kwargs

    # --- initialization, storage ------------------------------------------------------------
    def derived_settings(self) -> dict[str, Any]:
        derived: dict[str, Any] = {"base_dropout": self.base_dropout}
        if self.init_tokens is not None:
            derived.update(length=self.prefix_length, init_tokens=self.init_tokens)
        return derived

    def finalize(self) -> None:
        for site in self.sites.values():
            site.finalize()

    def stored_state(self) -> dict[str, torch.Tensor]:
        if any(site.mlp is not None for site in self.sites.values()):
            raise RuntimeError("finalize() the prefix before storing it")
        return {name: site.tensor().detach().contiguous() for name, site in self.sites.items()}

    def export(self, folder: Path) -> Export | None:
        """GPT-2: PEFT's prefix tuning in its MLP-free form (`prefix_projection` off), the stored
        activations as its `prompt_embeddings`, whose rows PEFT reads in the paper's layout
        (layer-major, then key/value, heads, head dims). PEFT numbers positions after the
        prefix, as the paper's code and ours do. BART's three prefixes have no PEFT form
        (PEFT prefixes the decoder only): None."""
        if self.is_encoder_decoder:
            return None
        from peft import PrefixTuningConfig

        from bench.engine.peft_folder import write_peft_folder

        config = self.base.config
        activations = self.sites["prefix"]
        peft_config = PrefixTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=self.prefix_length,
            num_layers=config.num_hidden_layers,
            token_dim=config.hidden_size,
            num_attention_heads=config.num_attention_heads,
            prefix_projection=False,
            inference_mode=True,
        )
        rows = activations.tensor().permute(3, 0, 1, 2, 4).reshape(self.prefix_length, -1)
        return write_peft_folder(folder, peft_config, {"prompt_embeddings": rows})

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.sites):
            raise ValueError(f"stored state has {sorted(state)}, expected {sorted(self.sites)}")
        for name, site in self.sites.items():
            site.load(state[name])
