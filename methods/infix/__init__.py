"""Infix-tuning (the paper's section 7.2 ablation): activations between source and target."""

from bench.methods.infix.config import InfixSettings
from bench.spec.registry import register_method

register_method(
    "infix",
    InfixSettings,
    "bench.methods.infix.model:InfixLM",
    description="infix-tuning: trained activations between the source and the target",
)
