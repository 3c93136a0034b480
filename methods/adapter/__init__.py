"""Adapter-tuning (Houlsby et al., 2019) through the `adapters` library (AdapterHub)."""

from bench.methods.adapter.config import AdapterSettings
from bench.spec.registry import register_method

register_method(
    "adapter",
    AdapterSettings,
    "bench.methods.adapter.model:AdapterLM",
    description="adapter-tuning (adapters library): bottleneck adapters sized by a parameter share",
    plain="bench.methods.adapter.plain:plain_model",
)
