"""The ensemble's settings: the mixture, and the two stored cells it mixes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bench.spec.settings import Dependency, MethodSettings


class EnsembleSettings(MethodSettings):
    lam: float = Field(0.5, ge=0, le=1, description="lambda: weight of the prefix-tuned model")
    mix: Literal["probability", "loglinear"] = Field("probability", description="how to mix")
    prefix: Dependency = Field(default_factory=Dependency, description="the prefix-tuned cell")
    finetune: Dependency = Field(default_factory=Dependency, description="the fine-tuned cell")

    def dependencies(self) -> dict[str, tuple[str, Dependency]]:
        return {"prefix": ("prefix", self.prefix), "finetune": ("finetune", self.finetune)}
