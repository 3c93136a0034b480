"""Embedding-only prefix (the paper's section 7.2 ablation; prompt tuning).

Only L "virtual token" embeddings are trained: the frozen model reads them as if they were the
first L tokens, and their activations in every layer follow from the model rather than being
free parameters as in prefix-tuning. As in the paper's code, the embeddings come from the same
kind of MLP (Embedding(L, d) -> Linear(d, h) -> tanh -> Linear(h, d)) while training, or are
optimized directly with `flat`; after training only the L x d embeddings are stored. The
activations are computed through the model's own cache, so positions, padding and decoding work
as for prefix-tuning. Decoder-only models only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from bench.engine.adapted import AdaptedLM, BuildContext, Export
from bench.errors import UserError
from bench.methods.prompt.config import PromptSettings


class PromptLM(AdaptedLM):
    def __init__(
        self, base: PreTrainedModel, settings: PromptSettings, context: BuildContext
    ) -> None:
        super().__init__(base)
        if self.is_encoder_decoder:
            raise UserError("the embedding-only prefix (prompt) is for decoder-only models")
        base.requires_grad_(False)
        self.base_dropout = settings.resolved_base_dropout(is_encoder_decoder=False)
        d_model = base.config.hidden_size
        self.prefix_length = settings.length
        self.prefix_rows = True
        self.mlp: nn.Module | None = None
        self.embeddings: nn.Parameter | None = None
        if settings.flat:
            self.embeddings = nn.Parameter(0.02 * torch.randn(settings.length, d_model))
        else:
            self.mlp = nn.Sequential(
                nn.Embedding(settings.length, d_model),
                nn.Linear(d_model, settings.mlp_hidden),
                nn.Tanh(),
                nn.Linear(settings.mlp_hidden, d_model),
            )

    def derived_settings(self) -> dict[str, Any]:
        return {"base_dropout": self.base_dropout}

    def _embeddings(self) -> torch.Tensor:
        if self.mlp is None:
            return self.embeddings
        return self.mlp(torch.arange(self.prefix_length, device=self.mlp[0].weight.device))

    def prefix_cache(self, batch_size: int) -> DynamicCache:
        embeds = self._embeddings().unsqueeze(0).expand(batch_size, -1, -1)
        return self.base(inputs_embeds=embeds, use_cache=True).past_key_values

    def finalize(self) -> None:
        if self.mlp is not None:
            with torch.no_grad():
                self.embeddings = nn.Parameter(self._embeddings().clone(), requires_grad=False)
            self.mlp = None

    def export(self, folder: Path) -> Export:
        """PEFT's prompt tuning with the stored embeddings as its `prompt_embeddings`. PEFT
        concatenates them to the input's embeddings and numbers positions over both, as the
        harness does for inputs without left padding (a left-padded row's positions count its
        padding in PEFT's forward, not in ours)."""
        from peft import PromptTuningConfig

        from bench.engine.peft_folder import write_peft_folder

        config = self.base.config
        peft_config = PromptTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=self.prefix_length,
            token_dim=config.hidden_size,
            num_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            num_transformer_submodules=1,
            inference_mode=True,
        )
        if self.mlp is not None:
            raise RuntimeError("finalize() the prompt before exporting it")
        return write_peft_folder(folder, peft_config, {"prompt_embeddings": self.embeddings})

    def stored_state(self) -> dict[str, torch.Tensor]:
        if self.mlp is not None:
            raise RuntimeError("finalize() the prompt before storing it")
        return {"embeddings": self.embeddings.detach().contiguous()}

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        expected = (self.prefix_length, self.base.config.hidden_size)
        if set(state) != {"embeddings"} or tuple(state["embeddings"].shape) != expected:
            raise ValueError(f"stored state does not fit: expected embeddings of shape {expected}")
        self.embeddings = nn.Parameter(state["embeddings"].clone(), requires_grad=False)
        self.mlp = None
