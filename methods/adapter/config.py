"""Adapter-tuning's settings: where the adapters sit, and their size as a share of the base."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bench.spec.settings import MethodSettings


class AdapterSettings(MethodSettings):
    config: Literal["li-liang", "houlsby", "pfeiffer"] = Field(
        "li-liang",
        description="where adapters sit: li-liang, the Prefix-Tuning authors' baseline (one "
        "per block, after its output, with its own LayerNorm); houlsby; pfeiffer",
    )
    share: float = Field(0.03, gt=0, lt=1, description="target trained / base parameters")
