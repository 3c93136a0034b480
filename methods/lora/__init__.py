"""LoRA (Hu et al., 2021) through PEFT: trained low-rank updates of the attention projections."""

from bench.methods.lora.config import LoraSettings
from bench.spec.registry import register_method

register_method(
    "lora",
    LoraSettings,
    "bench.methods.lora.model:LoraLM",
    description="LoRA (PEFT): trained low-rank updates of the attention projections",
    plain="bench.methods.lora.plain:plain_model",
)
