"""Prefix-tuning's settings (Li & Liang, 2021): the prefix length, its reparametrization, and
how it starts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bench.spec.settings import FrozenBaseSettings


class PrefixSettings(FrozenBaseSettings):
    length: int = Field(10, ge=1, description="prefix length L")
    mlp_hidden: int = Field(512, ge=1, description="hidden size h of the reparametrization MLP")
    flat: bool = Field(False, description="optimize the activations directly, without the MLP")
    init: Literal["random", "words"] = Field("random", description="how the prefix starts")
    init_text: str | None = Field(None, description="init: words: the words, e.g. 'summarize'")

    @model_validator(mode="after")
    def _text_for_words(self) -> PrefixSettings:
        if (self.init == "words") != (self.init_text is not None):
            raise ValueError("init_text is needed by init: words, and only by it")
        return self

    def positions_used(self) -> int:
        return self.length
