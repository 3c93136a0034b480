"""LoRA (Hu et al., 2021) through PEFT: trained low-rank updates of the attention projections.

PEFT injects the LoRA layers into the base in place (`inject_adapter_in_model`), so the engine
keeps talking to the transformers model and its cache. `target_modules` defaults to PEFT's
choice for the architecture (GPT-2: the fused `c_attn`, BART: `q_proj` and `v_proj`). Only the
LoRA weights are stored, keyed as PEFT names them inside the transformers model (without the
`base_model.model.` that a `PeftModel` adds); `export` writes them as a PEFT adapter folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import (
    LoraConfig,
    get_peft_model_state_dict,
    inject_adapter_in_model,
    set_peft_model_state_dict,
)
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from bench.engine.adapted import AdaptedLM, BuildContext, Export
from bench.engine.peft_folder import write_peft_folder
from bench.methods.lora.config import LoraSettings


class LoraLM(AdaptedLM):
    def __init__(
        self, base: PreTrainedModel, settings: LoraSettings, context: BuildContext
    ) -> None:
        config = LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=list(settings.target_modules) if settings.target_modules else None,
            # GPT-2's projections are Conv1D layers, whose weights are stored transposed.
            fan_in_fan_out=any(isinstance(m, Conv1D) for m in base.modules()),
        )
        inject_adapter_in_model(config, base)
        super().__init__(base)
        self.config = config

    def stored_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in get_peft_model_state_dict(self.base).items()}

    def export(self, folder: Path) -> Export:
        task = "SEQ_2_SEQ_LM" if self.is_encoder_decoder else "CAUSAL_LM"
        config = LoraConfig(**{**self.config.to_dict(), "task_type": task, "inference_mode": True})
        state = {f"base_model.model.{k}": v for k, v in self.stored_state().items()}
        return write_peft_folder(folder, config, state)

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        result = set_peft_model_state_dict(self.base, state)
        if result.unexpected_keys:
            raise ValueError(f"stored state does not fit: unexpected {result.unexpected_keys}")
