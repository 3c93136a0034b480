"""Every HF PEFT method as a method of the harness: `peft` (any `PeftConfig`) and one preset per
PEFT type that runs on GPT-2 or BART (`peft-lora`, `peft-ia3`, ...)."""

from bench.methods.peft.config import PRESETS, PeftSettings, preset_name, preset_settings
from bench.spec.registry import register_method

MODEL = "bench.methods.peft.model:PeftLM"

register_method(
    "peft",
    PeftSettings,
    MODEL,
    description="any HF PEFT method: settings.config holds its PeftConfig fields",
    source="peft",
)
for _type in PRESETS:
    register_method(
        preset_name(_type),
        preset_settings(_type),
        MODEL,
        description=f"HF PEFT's {_type} with PEFT's defaults (settings.config overrides them)",
        source="peft",
    )
