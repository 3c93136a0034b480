"""A trained method written as HF PEFT writes an adapter: `adapter_config.json` and
`adapter_model.safetensors`, loaded by `PeftModel.from_pretrained(base, folder)`."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PeftConfig
from safetensors.torch import save_file

from bench.engine.adapted import Export

LOADS_WITH = "model = peft.PeftModel.from_pretrained(BASE, DIR)"


def write_peft_folder(folder: Path, config: PeftConfig, state: dict[str, torch.Tensor]) -> Export:
    """`state` keyed as PEFT saves it (`get_peft_model_state_dict` of a `PeftModel`)."""
    config.save_pretrained(str(folder))
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    return Export("peft", LOADS_WITH)
