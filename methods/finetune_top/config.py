"""FT-top's settings: how many top blocks are trained, and whether the embeddings are."""

from __future__ import annotations

from pydantic import Field

from bench.spec.settings import MethodSettings


class FinetuneTopSettings(MethodSettings):
    k: int = Field(2, ge=1, description="number of top blocks trained")
    embeddings: bool = Field(False, description="also train the (tied) token embeddings")
