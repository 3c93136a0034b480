"""Adapter-tuning's settings: where the adapters sit, and their size as a share of the base."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bench.spec import MethodSettings


class AdapterSettings(MethodSettings):
    config: Literal["houlsby", "pfeiffer"] = Field("houlsby", description="where adapters sit")
    share: float = Field(0.03, gt=0, lt=1, description="target trained / base parameters")
