"""Prefix-tuning (Li & Liang, 2021) for decoder-only models, as in the paper and its code.

A prefix of `length` positions is prepended to the key/value activations of every layer. During
training the activations are produced by a reparametrization, Embedding(L, d) -> Linear(d, h) ->
tanh -> Linear(h, layers x 2 x d), because optimizing them directly is unstable (paper section
4.3); `flat` optimizes them directly instead. The base model stays frozen. After training the MLP
is discarded and only the L x layers x 2 x d activations are stored.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from bench.adapted import AdaptedLM, Method, MethodSettings
from bench.registry import METHODS


class PrefixSettings(MethodSettings):
    length: int = Field(10, ge=1, description="prefix length L")
    mlp_hidden: int = Field(512, ge=1, description="hidden size h of the reparametrization MLP")
    flat: bool = Field(False, description="optimize the activations directly, without the MLP")


class PrefixLM(AdaptedLM):
    def __init__(self, base: PreTrainedModel, settings: PrefixSettings) -> None:
        super().__init__(base)
        base.requires_grad_(False)
        config = base.config
        self.n_layer, self.n_head = config.n_layer, config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.prefix_length = settings.length
        width = self.n_layer * 2 * config.n_embd
        self.reparam: nn.Module | None = None
        if settings.flat:
            self.activations = nn.Parameter(0.02 * torch.randn(settings.length, width))
        else:
            self.activations = None
            self.reparam = nn.Sequential(
                nn.Embedding(settings.length, config.n_embd),
                nn.Linear(config.n_embd, settings.mlp_hidden),
                nn.Tanh(),
                nn.Linear(settings.mlp_hidden, width),
            )

    def _prefix(self) -> torch.Tensor:
        """[layers, 2, heads, L, head_dim]: the paper's layout (layer-major, then key/value)."""
        if self.reparam is not None:
            index = torch.arange(self.prefix_length, device=self.reparam[0].weight.device)
            flat = self.reparam(index)
        else:
            flat = self.activations
        flat = flat.view(self.prefix_length, self.n_layer, 2, self.n_head, self.head_dim)
        return flat.permute(1, 2, 3, 0, 4)

    def prefix_cache(self, batch_size: int) -> DynamicCache:
        prefix = self._prefix()
        cache = DynamicCache()
        for layer in range(self.n_layer):
            key, value = (
                prefix[layer, i].unsqueeze(0).expand(batch_size, -1, -1, -1) for i in (0, 1)
            )
            cache.update(key, value, layer)
        return cache

    def finalize(self) -> None:
        if self.reparam is None:
            return
        with torch.no_grad():
            flat = self._prefix().permute(3, 0, 1, 2, 4).reshape(self.prefix_length, -1)
        self.activations = nn.Parameter(flat.clone(), requires_grad=False)
        self.reparam = None

    def stored_state(self) -> dict[str, torch.Tensor]:
        if self.reparam is not None:
            raise RuntimeError("finalize() the prefix before storing it")
        return {"prefix": self._prefix().detach().contiguous()}

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        prefix = state["prefix"]  # [layers, 2, heads, L, head_dim] -> the flat layout
        flat = prefix.permute(3, 0, 1, 2, 4).reshape(self.prefix_length, -1)
        self.activations = nn.Parameter(flat.clone(), requires_grad=False)
        self.reparam = None


@METHODS.register("prefix")
class PrefixTuning(Method):
    Settings = PrefixSettings
    description = "prefix-tuning: trained key/value prefix in every layer (MLP reparametrized)"

    def build(self, base: PreTrainedModel, settings: PrefixSettings) -> AdaptedLM:
        return PrefixLM(base, settings)
