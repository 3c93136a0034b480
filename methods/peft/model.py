"""Any HF PEFT method, built by PEFT (`get_peft_model`) and driven by the harness's engine.

Tuners that inject layers (LoRA, IA3, VeRA, LoHa, BOFT, ...) leave a transformers model the
engine calls as it calls any base. Prompt-learning types reach the engine through its key/value
cache, as prefix-tuning does: PEFT's prefix tuning (and Cartridges) hand over their cache
(`get_prompt`); the embedding prompts (prompt tuning, p-tuning, multitask prompt tuning with
the one task of a cell) are read by the frozen decoder into a cache (GPT-2), or are prepended to
BART's encoder input, exactly where PEFT's own forward puts them. Positions, masks and prefix
lengths are those of PEFT's forward, so the exported adapter (`bench export --format model`)
computes what the harness did (tested against `PeftModel.from_pretrained`).

Trained: what PEFT leaves trainable (`get_nb_trainable_parameters`). Stored: PEFT's own saved
state (`get_peft_model_state_dict`, the keys of `adapter_model.safetensors`): for prompt
learning the final prompts, without their reparametrization; after training a prompt type is
rebuilt in PEFT's inference form around them, so what decodes is what is stored.

AdaLoRA follows PEFT's recipe: its orthogonal regularization is added to the loss (as
`AdaLoraModel.forward` does) and `update_and_allocate` runs after every optimizer step;
`total_step`, unless given, is the cell's number of steps. Stored at its initial ranks with the
pruned ones zeroed (PEFT's `save_pretrained` cuts them away: the same function, more bytes), so a
fresh build loads it without PEFT's rank pattern. Its rank allocator's running importance is not
checkpointed: a cell resumed mid-training re-estimates it.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import torch
from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import DynamicCache, EncoderDecoderCache, PreTrainedModel

from bench.engine.adapted import AdaptedLM, Batch, BuildContext, Export
from bench.engine.peft_folder import LOADS_WITH
from bench.errors import UserError
from bench.methods.peft.config import SET_AT_TRAINING, PeftSettings, peft_config

KV_PROMPTS = {"PREFIX_TUNING", "CARTRIDGE"}  # PEFT's get_prompt returns a key/value cache
ADAPTER = "default"


def task_type(base: PreTrainedModel) -> str:
    return "SEQ_2_SEQ_LM" if base.config.is_encoder_decoder else "CAUSAL_LM"


class PeftLM(AdaptedLM):
    def __init__(self, base: PreTrainedModel, settings: PeftSettings, context: BuildContext):
        kind = settings.peft_type
        try:
            config = peft_config(settings.config, task_type(base))
        except ValueError as error:  # checked with the grid; here for models built in code
            raise UserError(f"peft settings: {error}") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "fan_in_fan_out set to True" for GPT-2
            try:
                peft_model = get_peft_model(base, config)
            except (ValueError, TypeError, NotImplementedError, ImportError, KeyError,
                    RuntimeError) as error:  # fmt: skip
                if base.device.type == "meta" and "meta" in str(error).lower():
                    raise UserError(
                        f"PEFT's {kind} starts from values computed from the base's weights, so "
                        "it is not counted from a config alone (the meta device)"
                    ) from None
                if type(error) is RuntimeError:  # not NotImplementedError (its subclass)
                    raise
                raise UserError(
                    f"PEFT's {kind} cannot adapt {base.config.model_type}: "
                    f"{str(error).splitlines()[0]}"
                ) from None
        super().__init__(peft_model.get_base_model())
        if not any(p.requires_grad for p in peft_model.parameters()):
            raise UserError(
                f"PEFT's {kind} finds nothing to train in {base.config.model_type} (its default "
                "target modules match none); set settings.config.target_modules"
            )
        self.peft = peft_model
        self.peft_type = kind
        self.late_total = SET_AT_TRAINING.get(self.peft_type)
        if self.late_total and settings.config.get(self.late_total) is not None:
            self.late_total = None  # the user set it
        self.prompt_learning = config.is_prompt_learning
        if not self.prompt_learning:
            return
        length = config.num_virtual_tokens
        self.prefix_rows = self.peft_type not in KV_PROMPTS
        if self.peft_type in KV_PROMPTS:
            self.prefix_length = length  # BART: the decoder's self-attention only, as in PEFT
        elif not self.is_encoder_decoder:
            self.prefix_length = length
        elif self.peft_type in ("PROMPT_TUNING", "P_TUNING"):
            self.cross_prefix_length = length  # prepended to the encoder's input
        else:
            raise UserError(
                f"PEFT's {self.peft_type} on BART also prompts the decoder, which the harness "
                "cannot reproduce through its cache; use it with GPT-2"
            )

    # --- training ----------------------------------------------------------------------------
    def start_training(self, total_steps: int) -> None:
        self.total_steps = total_steps
        if self.late_total == "total_step":
            self.peft.peft_config[ADAPTER].total_step = total_steps
            self.peft.base_model.rankallocator.set_total_step(total_steps)

    def after_step(self, step: int) -> None:
        if self.peft_type == "ADALORA":
            self.peft.base_model.update_and_allocate(step)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        loss = super().training_loss(batch)
        if self.peft_type == "ADALORA":
            loss = loss + orthogonal_regularization(self.peft)
        return loss

    total_steps: int | None = None  # set when training starts

    def derived_settings(self) -> dict[str, Any]:
        if self.late_total and self.total_steps is not None:
            return {self.late_total: getattr(self.peft.peft_config[ADAPTER], self.late_total)}
        return {}

    # --- what the model sees before the input ------------------------------------------------
    def _prompts(self, rows: int) -> torch.Tensor:
        task_ids = None
        if self.peft_type == "MULTITASK_PROMPT_TUNING":  # a cell is one task: task 0
            task_ids = torch.zeros(rows, dtype=torch.long, device=self.base.device)
        return self.peft.get_prompt(rows, task_ids=task_ids)

    def prefix_cache(self, batch_size: int) -> DynamicCache | EncoderDecoderCache:
        if self.peft_type in KV_PROMPTS:
            return self.peft.get_prompt(batch_size)
        if self.prompt_learning and not self.is_encoder_decoder:
            embeds = self._prompts(batch_size)[:, : self.prefix_length]
            return self.base(inputs_embeds=embeds, use_cache=True).past_key_values
        return super().prefix_cache(batch_size)

    def encode(self, source_ids: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        if not self.cross_prefix_length:
            return super().encode(source_ids, source_mask)
        rows, length = source_ids.shape[0], self.cross_prefix_length
        embeds = self.peft.word_embeddings(source_ids)
        prompts = self._prompts(rows)[:, :length].to(embeds.dtype)
        mask = torch.cat([source_mask.new_ones(rows, length), source_mask], dim=1)
        encoder = self.base.get_encoder()
        return encoder(
            inputs_embeds=torch.cat([prompts, embeds], dim=1), attention_mask=mask
        ).last_hidden_state

    # --- storage -----------------------------------------------------------------------------
    def finalize(self) -> None:
        if self.prompt_learning and not self.peft.peft_config[ADAPTER].inference_mode:
            self._inference_form(None if self._on_meta() else self.stored_state())

    def _on_meta(self) -> bool:
        """Built on the meta device (`bench params`): shapes without values."""
        return self.base.device.type == "meta"

    def _inference_form(self, state: dict[str, torch.Tensor] | None) -> None:
        """PEFT's inference-mode prompt encoder holding `state` (the final prompts), as
        `PeftModel.from_pretrained` builds it."""
        config = dataclasses.replace(self.peft.peft_config[ADAPTER], inference_mode=True)
        device = self.base.device
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.peft = get_peft_model(self.base, config).to(device)
        if state is not None:
            set_peft_model_state_dict(self.peft, state)

    def export(self, folder: Path) -> Export:
        """PEFT's own `save_pretrained` (AdaLoRA: cut to its final ranks, as PEFT saves it)."""
        self.peft.save_pretrained(str(folder))
        return Export("peft", LOADS_WITH)

    def stored_state(self) -> dict[str, torch.Tensor]:
        config = self.peft.peft_config[ADAPTER]
        if self._on_meta() and config.inference_mode:  # PEFT copies prompts to the CPU
            return dict(self.peft.prompt_encoder[ADAPTER].named_parameters())  # same sizes
        pattern = getattr(config, "rank_pattern", None) if self.peft_type == "ADALORA" else None
        try:  # AdaLoRA: its matrices at their initial ranks, the pruned ones zeroed by its mask
            if pattern is not None:
                config.rank_pattern = None
            state = get_peft_model_state_dict(self.peft)
        finally:
            if pattern is not None:
                config.rank_pattern = pattern
        # cloned: some types alias one tensor under two names, which safetensors refuses
        return {k: v.detach().clone() for k, v in state.items()}

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        expected = {k: v.shape for k, v in self.stored_state().items()}
        got = {k: v.shape for k, v in state.items()}
        if got != expected:
            raise ValueError(
                f"stored state does not fit: expected {sorted(expected)} of shapes "
                f"{[tuple(s) for s in expected.values()]}"
            )
        if self.prompt_learning:
            self._inference_form(state)
            return
        result = set_peft_model_state_dict(self.peft, state)
        if result.unexpected_keys:
            raise ValueError(f"stored state does not fit: unexpected {result.unexpected_keys}")


def orthogonal_regularization(peft_model: Any) -> torch.Tensor:
    """AdaLoRA's penalty `orth_reg_weight * mean ||P P^T - I||_F` over its A and B matrices, as
    `peft.tuners.adalora.AdaLoraModel.forward` adds it to the loss (tested equal to it)."""
    weight = peft_model.peft_config[ADAPTER].orth_reg_weight
    terms = []
    for name, p in peft_model.base_model.model.named_parameters():
        if ("lora_A" in name or "lora_B" in name) and ADAPTER in name:
            cov = p @ p.T if "lora_A" in name else p.T @ p
            terms.append(torch.linalg.matrix_norm(cov - torch.eye(*cov.shape, device=cov.device)))
    if not terms:
        return torch.zeros(())
    return weight * torch.stack(terms).mean()
