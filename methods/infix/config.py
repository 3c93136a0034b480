"""Infix-tuning's settings: prefix-tuning's, plus which of the two infixes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bench.methods.prefix.config import PrefixSettings


class InfixSettings(PrefixSettings):
    variant: Literal["authors", "fixed"] = Field(
        "authors",
        description="authors: L pseudo-tokens read after the source, whose activations get "
        "the MLP's added (input-dependent, as the authors' code); fixed: L trained activations "
        "like a prefix's, seen from the separator on",
    )

    @model_validator(mode="after")
    def _words_need_fixed(self) -> InfixSettings:
        if self.variant == "authors" and self.init == "words":
            raise ValueError("init: words starts fixed activations: use it with variant: fixed")
        return self
