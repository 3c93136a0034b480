"""The `peft` method's settings: any HF PEFT config, by its fields, and the named presets.

`config` holds the fields of one of PEFT's `PeftConfig` classes, `peft_type` first (`LORA`,
`IA3`, `PREFIX_TUNING`, ...); PEFT itself validates them (its config class's `__post_init__`),
so a bad field or value is PEFT's message in one line. `task_type` is the harness's to set (from
the base: CAUSAL_LM for GPT-2, SEQ_2_SEQ_LM for BART). PEFT, and with it torch, is imported only
when a grid names a PEFT method.

A preset (`peft-lora`, `peft-ia3`, ...) is the same method with its `peft_type` fixed and the
few fields PEFT's defaults leave unusable on these models filled in; a grid's `config` adds to
or overrides them. `PRESETS` covers every type of the pinned PEFT that runs on GPT-2 or BART
here; `NOT_RUN` names the others and why (a test checks the two cover PEFT's `PeftType`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from bench.errors import did_you_mean
from bench.spec.settings import MethodSettings

# Fields PEFT's defaults leave unusable on GPT-2 / BART, per type. VB-LoRA's and C3A's blocks
# must divide every adapted width (64 and 128 in the mini LMs, 768 and 1024 in GPT-2 and BART).
PRESET_FIELDS: dict[str, dict[str, Any]] = {
    "VBLORA": {"vector_length": 32},
    "C3A": {"block_size": 32},
}
PRESETS = (
    "ADALORA", "BEFT", "BOFT", "C3A", "CARTRIDGE", "DELORA", "DEFT", "FOURIERFT", "FROD", "GLORA",
    "GRALORA", "HIRA", "HRA", "IA3", "LILY", "LN_TUNING", "LOHA", "LOKR", "LORA", "MISS",
    "MULTITASK_PROMPT_TUNING", "OFT", "OSF", "PEANUT", "PREFIX_TUNING", "PROMPT_TUNING", "PSOFT",
    "PVERA", "P_TUNING", "RANDLORA", "ROAD", "SHADOW", "SHIRA", "SUPERTUNING", "TINYLORA",
    "UNILORA", "VBLORA", "VERA", "WAVEFT",
)  # fmt: skip
# PEFT types no preset runs, and why (what the harness would need, or PEFT's own limit).
NOT_RUN: dict[str, str] = {
    "ADAMSS": "needs scikit-learn (PEFT imports it for AdaMSS); pip install scikit-learn",
    "ADAPTION_PROMPT": "PEFT supports it for Llama-family models only",
    "CPT": "trains on in-context examples (cpt_token_ids, cpt_mask) with its own weighted loss; "
    "the harness's tasks have no in-context examples",
    "POLY": "routes each example by task_ids (multi-task); a cell trains one task",
    "TRAINABLE_TOKENS": "trains the embeddings of given token_indices (new tokens); use "
    "`method: peft` with config.token_indices",
    "XLORA": "mixes already trained LoRA adapters and decodes without a key/value cache",
}
PROMPT_LEARNING = {"PREFIX_TUNING", "CARTRIDGE", "PROMPT_TUNING", "P_TUNING",
                   "MULTITASK_PROMPT_TUNING"}  # fmt: skip
# A field that PEFT requires but the harness knows only when training starts: a placeholder
# lets PEFT validate the rest, `PeftLM` sets the real value (AdaLoRA's schedule: the cell's steps).
SET_AT_TRAINING = {"ADALORA": "total_step"}
HARNESS_FIELDS = ("task_type", "inference_mode", "base_model_name_or_path", "revision")


def preset_name(peft_type: str) -> str:
    return "peft-" + peft_type.lower().replace("_", "-")


def peft_config(config: dict[str, Any], task_type: str | None = None) -> Any:
    """The PEFT config object of `config` (PEFT's own validation); `task_type` as the base needs."""
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING

    peft_type = str(config.get("peft_type", "")).upper()
    classes = {str(t.value): c for t, c in PEFT_TYPE_TO_CONFIG_MAPPING.items()}
    if peft_type not in classes:
        hint = did_you_mean(peft_type, sorted(classes))
        raise ValueError(
            f"unknown peft_type {peft_type!r}; {hint}valid: {', '.join(sorted(classes))}"
        )
    cls = classes[peft_type]
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    given = {k: v for k, v in config.items() if k != "peft_type"}
    for name in given:
        if name not in fields or name in HARNESS_FIELDS:
            why = (
                "is set by the harness"
                if name in HARNESS_FIELDS
                else f"is not a field of {cls.__name__}"
            )
            raise ValueError(f"{name!r} {why}; {did_you_mean(name, sorted(fields))}".rstrip("; "))
    late = SET_AT_TRAINING.get(peft_type)
    if late and given.get(late) is None:
        given[late] = 10**9  # a placeholder, replaced when training starts
    try:
        return cls(**given, task_type=task_type)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"PEFT rejects this {cls.__name__}: {str(error).splitlines()[0]}"
        ) from None


class PeftSettings(MethodSettings):
    config: dict[str, Any] = Field(
        description="fields of a PEFT config: peft_type (LORA, IA3, PREFIX_TUNING, ...) and any "
        "field of its config class, e.g. {peft_type: LORA, r: 8, target_modules: [c_attn]}"
    )

    preset: ClassVar[dict[str, Any]] = {}  # a preset's fixed peft_type and filled fields

    @field_validator("config", mode="before")
    @classmethod
    def _over_preset(cls, config: Any) -> Any:
        if not cls.preset or not isinstance(config, dict):
            return config
        fixed = cls.preset["peft_type"]
        if str(config.get("peft_type", fixed)).upper() != fixed:
            raise ValueError(
                f"this preset is peft_type {fixed}; for another type use method peft "
                "(or that type's preset)"
            )
        return {**cls.preset, **config, "peft_type": fixed}

    @model_validator(mode="after")
    def _valid_for_peft(self) -> PeftSettings:
        peft_config(self.config)
        return self

    @property
    def peft_type(self) -> str:
        return str(self.config["peft_type"]).upper()

    def positions_used(self) -> int:
        if self.peft_type not in PROMPT_LEARNING:
            return 0
        return int(self.config.get("num_virtual_tokens") or 0)


def preset_settings(peft_type: str) -> type[PeftSettings]:
    """The settings class of `peft_type`'s preset: `config` defaults to the preset's fields."""
    preset = {"peft_type": peft_type, **PRESET_FIELDS.get(peft_type, {})}
    if peft_type in PROMPT_LEARNING:
        preset.setdefault("num_virtual_tokens", 10)  # PEFT has no default; the paper's L
    return type(
        f"Peft{peft_type.title().replace('_', '')}Settings",
        (PeftSettings,),
        {
            "__module__": __name__,
            "__annotations__": {"config": dict[str, Any]},
            "config": Field(
                default_factory=lambda: dict(preset),
                description=f"PEFT config fields over the preset's {preset}",
            ),
            "preset": preset,
        },
    )
