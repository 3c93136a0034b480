"""Embedding-only prefix (the paper's section 7.2 ablation; prompt tuning)."""

from bench.methods.prompt.config import PromptSettings
from bench.spec.registry import register_method

register_method(
    "prompt",
    PromptSettings,
    "bench.methods.prompt.model:PromptLM",
    description="embedding-only prefix (prompt tuning): L trained input embeddings",
)
