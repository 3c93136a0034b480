"""Full fine-tuning: every base parameter is trained and the whole model is stored."""

from bench.methods.finetune.config import FinetuneSettings
from bench.spec.registry import register_method

register_method(
    "finetune",
    FinetuneSettings,
    "bench.methods.finetune.model:FinetunedLM",
    description="full fine-tuning: all parameters trained and stored",
    plain="bench.methods.finetune.plain:plain_model",
)
