"""The cocktail's settings: the distillation weight, and the stored teacher cell."""

from __future__ import annotations

from pydantic import Field

from bench.spec.settings import Dependency, MethodSettings


class CocktailSettings(MethodSettings):
    beta: float = Field(1.0, ge=0, description="weight of the distillation (KL) term")
    teacher: Dependency = Field(default_factory=Dependency, description="the prefix-tuned cell")

    def dependencies(self) -> dict[str, tuple[str, Dependency]]:
        return {"teacher": ("prefix", self.teacher)}
