"""Adapter-tuning (Houlsby et al., 2019) through the `adapters` library (AdapterHub).

Bottleneck adapters (down-projection, nonlinearity, up-projection, residual) are inserted into
every layer of the frozen base. `li-liang` (the default) is the adapter baseline of the
Prefix-Tuning paper as its authors' code builds it (`adapter_design=1`, after Lin et al., 2020):
one adapter per block, on the block's output (after the feed-forward residual), computing
`h + up(relu(down(LayerNorm(h))))` with its own trainable LayerNorm and BERT-style init, built
from the library's `BnConfig`. `houlsby` puts one after the attention and one after the
feed-forward block of each layer (`DoubleSeqBnConfig`), `pfeiffer` only the latter
(`SeqBnConfig`). The paper sizes its adapter baselines by their share of the base's parameters
(0.1% and 3% of GPT-2 medium), so `share` is the setting and the bottleneck width m, with the
library's reduction factor d / m, is derived from it for the given base: the library's adapter
sizes are affine in m, so two tiny probe adapters measure them and m is the nearest width to the
target. Both are recorded with the cell. Only the adapter weights are stored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import adapters
import torch
from adapters import BnConfig, DoubleSeqBnConfig, SeqBnConfig
from transformers import PreTrainedModel

from bench.engine.adapted import (
    AdaptedLM,
    BuildContext,
    Export,
    count,
    load_trained_state,
    trained_state,
)
from bench.methods.adapter.config import AdapterSettings

LI_LIANG = partial(
    BnConfig,
    mh_adapter=False,
    output_adapter=True,
    non_linearity="relu",
    original_ln_before=True,  # the block's residual is added first: the adapter sees its output
    original_ln_after=False,
    residual_before_ln=False,  # the adapter's residual is that output, not the MLP's alone
    ln_before=True,  # the adapter's own LayerNorm, before the down-projection
    init_weights="bert",  # N(0, 0.02) weights, zero biases, as the authors' GPT-2 init
)
CONFIGS = {"li-liang": LI_LIANG, "houlsby": DoubleSeqBnConfig, "pfeiffer": SeqBnConfig}
NAME = "bench"


def reduction_factor(d_model: int, width: int) -> float:
    """The factor r for which the library's `int(d // r)` is exactly `width`."""
    factor = d_model / width
    return factor if int(d_model // factor) == width else math.nextafter(factor, 0.0)


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class AdapterLM(AdaptedLM):
    def __init__(
        self, base: PreTrainedModel, settings: AdapterSettings, context: BuildContext
    ) -> None:
        total = count(list(base.parameters()))
        adapters.init(base)
        super().__init__(base)
        d_model = base.config.hidden_size
        config = CONFIGS[settings.config]

        def probe(width: int) -> int:
            base.add_adapter(
                "probe", config=config(reduction_factor=reduction_factor(d_model, width))
            )
            size = sum(p.numel() for n, p in base.named_parameters() if ".probe." in n)
            base.delete_adapter("probe")
            return size

        one, two = probe(1), probe(2)
        per_width = two - one
        self.width = max(
            1, min(d_model, round((settings.share * total - (one - per_width)) / per_width))
        )
        self.factor = reduction_factor(d_model, self.width)
        base.add_adapter(NAME, config=config(reduction_factor=self.factor))
        with _quiet(logging.getLogger("adapters.model_mixin")):
            base.train_adapter(NAME)  # warns, wrongly, that no adapter is active
        self.share = count(self.trainable_parameters()) / total

    def derived_settings(self) -> dict[str, Any]:
        return {
            "bottleneck": self.width,
            "reduction_factor": self.factor,
            "actual_share": self.share,
        }

    def export(self, folder: Path) -> Export:
        """The `adapters` library's own `save_adapter` folder."""
        self.base.save_adapter(str(folder), NAME)
        return Export(
            "adapters",
            "adapters.init(BASE)\nBASE.set_active_adapters(BASE.load_adapter(str(DIR)))\n"
            "model = BASE",
        )

    def stored_state(self) -> dict[str, torch.Tensor]:
        return trained_state(self.base)

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        load_trained_state(self.base, state)
