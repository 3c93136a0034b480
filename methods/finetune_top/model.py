"""FT-top: fine-tune only the top k transformer blocks (the paper's FT-TOP2 baseline, k = 2).

The paper says FT-TOP2 "only tunes the top 2 layers" and reports 7.1% of GPT-2 medium's
parameters, which is the top two blocks; we also train the final layer norm that sits on them
(2d parameters), as the paper's code does. That code also unfroze the token embeddings (tied to
the output layer, another 14.5%), which contradicts the reported 7.1%; `embeddings: true`
reproduces the code instead of the paper. For encoder-decoder models the top blocks are the top
decoder layers. Only what is trained is stored.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from bench.engine.adapted import AdaptedLM, BuildContext, load_trained_state, trained_state
from bench.errors import UserError
from bench.methods.finetune_top.config import FinetuneTopSettings


def top_modules(base: PreTrainedModel, k: int) -> list[nn.Module]:
    """The top k blocks of the (decoder) stack and the final layer norm above them, if any."""
    if base.config.is_encoder_decoder:
        stack = base.get_decoder()
        blocks, final_norm = stack.layers, getattr(stack, "layer_norm", None)
    elif hasattr(base, "transformer") and hasattr(base.transformer, "h"):  # the GPT-2 family
        blocks, final_norm = base.transformer.h, base.transformer.ln_f
    else:
        raise UserError(f"finetune-top does not know the blocks of {type(base).__name__}")
    if k > len(blocks):
        raise UserError(f"finetune-top k={k}, but the model has only {len(blocks)} blocks")
    return [*blocks[-k:], *([final_norm] if final_norm is not None else [])]


class TopLM(AdaptedLM):
    def __init__(
        self, base: PreTrainedModel, settings: FinetuneTopSettings, context: BuildContext
    ) -> None:
        super().__init__(base)
        base.requires_grad_(False)
        for module in top_modules(base, settings.k):
            module.requires_grad_(True)
        if settings.embeddings:
            base.get_input_embeddings().requires_grad_(True)

    def stored_state(self) -> dict[str, torch.Tensor]:
        return trained_state(self.base)

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        load_trained_state(self.base, state)
