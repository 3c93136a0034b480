"""Claims a grid makes about its results, as the papers make them, checked on what it ran.

A grid's `claims:` list states each claim in words and in terms the harness can test:

    claims:
      - claim: prefix-tuning within 1 BLEU of fine-tuning on E2E, training 0.1% of parameters
        method: prefix          # a method entry's label, or its name where only one entry has it
        than: [FT]              # compared with each of these
        task: e2e
        splits: [test]
        metric: bleu            # a metric of the task's suite (default: bleu)
        relation: within        # above | below | within | at_least
        margin: 1.0             # on the paper's scale (BLEU points)
        max_stored_share: 0.001  # optional: it stores at most this share of the parameters
        n_train: 100            # optional: the cells of this training size

`bench.results.claims` evaluates each as supported, contradicted or inconclusive. Validated with
the grid: a claim naming a method, task, split or metric the grid does not have is refused.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RELATIONS = ("above", "below", "within", "at_least")


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    claim: str = Field(min_length=1, max_length=500, description="the claim, in words")
    method: str = Field(description="the method the claim is about: a label, or an entry's name")
    than: list[str] = Field(min_length=1, description="the methods it is compared with")
    task: str
    splits: list[str] = Field(min_length=1)
    metric: str = "bleu"
    relation: Literal["above", "below", "within", "at_least"]
    margin: float = Field(0.0, ge=0, description="paper scale; within: the half-width allowed")
    max_stored_share: float | None = Field(None, gt=0, le=1)
    n_train: int | None = Field(None, ge=1, description="the cells of this training size")

    @field_validator("margin")
    @classmethod
    def _finite(cls, margin: float) -> float:
        if not math.isfinite(margin):
            raise ValueError("margin must be a finite number")
        return margin

    def statement(self) -> str:
        """The tested form, e.g. "prefix within 1 bleu of FT on e2e test"."""
        relation = {"above": "above", "below": "below", "within": "within",
                    "at_least": "at least as good as"}[self.relation]  # fmt: skip
        margin = f" {self.margin:g} {self.metric} of" if self.relation == "within" else ""
        by = f" by {self.margin:g}" if self.margin and self.relation != "within" else ""
        size = f" at n_train {self.n_train}" if self.n_train else ""
        metric = "" if margin else f" ({self.metric})"
        return (
            f"{self.method} {relation}{margin} {' and '.join(self.than)}{by} on {self.task} "
            f"{', '.join(self.splits)}{metric}{size}"
        )
