"""FT-top: fine-tune only the top k transformer blocks (the paper's FT-TOP2 baseline, k = 2)."""

from bench.methods.finetune_top.config import FinetuneTopSettings
from bench.spec.registry import register_method

register_method(
    "finetune-top",
    FinetuneTopSettings,
    "bench.methods.finetune_top.model:TopLM",
    description="FT-top: only the top k blocks (and the final layer norm) trained and stored",
    plain="bench.methods.finetune_top.plain:plain_model",
)
