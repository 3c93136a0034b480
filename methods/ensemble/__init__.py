"""Ensemble (Hewitt et al., 2021): a prefix-tuned and a fine-tuned model mixed while decoding."""

from bench.methods.ensemble.config import EnsembleSettings
from bench.spec.registry import register_method

register_method(
    "ensemble",
    EnsembleSettings,
    "bench.methods.ensemble.model:EnsembleLM",
    description=(
        "ensemble: prefix-tuned and fine-tuned next-token distributions mixed in beam search"
    ),
    keeps_dependencies=True,
)
