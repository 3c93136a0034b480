"""The embedding-only prefix's settings: L virtual tokens and their reparametrization."""

from __future__ import annotations

from pydantic import Field

from bench.spec.settings import FrozenBaseSettings


class PromptSettings(FrozenBaseSettings):
    length: int = Field(10, ge=1, description="number of virtual tokens L (the paper: 1, 10, 20)")
    mlp_hidden: int = Field(512, ge=1, description="hidden size h of the reparametrization MLP")
    flat: bool = Field(False, description="optimize the embeddings directly, without the MLP")

    def positions_used(self) -> int:
        return self.length
