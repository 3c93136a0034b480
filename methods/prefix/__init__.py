"""Prefix-tuning (Li & Liang, 2021), as in the paper and its code, for GPT-2 and BART."""

from bench.methods.prefix.config import PrefixSettings
from bench.spec.registry import register_method

register_method(
    "prefix",
    PrefixSettings,
    "bench.methods.prefix.model:PrefixLM",
    description="prefix-tuning: trained key/value prefix in every layer (MLP reparametrized)",
    plain="bench.methods.prefix.plain:plain_model",
)
