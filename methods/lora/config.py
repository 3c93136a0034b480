"""LoRA's settings, as PEFT's `LoraConfig` names them."""

from __future__ import annotations

from pydantic import Field

from bench.spec.settings import MethodSettings


class LoraSettings(MethodSettings):
    rank: int = Field(8, ge=1, description="rank r of the update")
    alpha: float = Field(16.0, gt=0, description="scaling: the update is multiplied by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: tuple[str, ...] | None = Field(
        None, description="module names to adapt; PEFT's default for the architecture if unset"
    )
