"""Text -> token ids, the same way for training and decoding.

Examples are `source <eos> target <eos>` with the loss on the target tokens only, the paper's
format for GPT-2 (`src bos tgt eos`, where bos == eos); an encoder-decoder model reads the source
in its encoder and `<start> target` in its decoder.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from bench.adapted import IGNORE
from bench.spec import TrainConfig

Encoded = tuple[list[int], list[int], list[int]]  # (encoder ids, ids, labels)


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int) -> list[int]:
    """`text` as ids ending in eos, after a bos where the tokenizer's bos is its own token
    (BART's `<s>`, as in its pretraining; GPT-2's bos is its eos, which only ends sequences)."""
    start = [tokenizer.bos_token_id] if tokenizer.bos_token_id != tokenizer.eos_token_id else []
    ids = tokenizer.encode(" " + text, add_special_tokens=False)[: max_tokens - 1 - len(start)]
    return [*start, *ids, tokenizer.eos_token_id]


def encode_source(tokenizer: PreTrainedTokenizerBase, source: str, max_tokens: int) -> list[int]:
    return encode_text(tokenizer, source, max_tokens)


def encode_pair(
    tokenizer: PreTrainedTokenizerBase,
    source: str,
    target: str,
    config: TrainConfig,
    decoder_start: int | None = None,
) -> Encoded:
    """(encoder ids, ids, labels); labels mask everything but the target with IGNORE.

    Decoder-only (`decoder_start` None): no encoder ids, ids are `source <eos> target <eos>`.
    Encoder-decoder: the source goes to the encoder and the decoder reads `<start> target`.
    """
    src = encode_source(tokenizer, source, config.max_source_tokens)
    tgt = encode_text(tokenizer, target, config.max_target_tokens)
    if decoder_start is None:
        return [], src + tgt, [IGNORE] * len(src) + tgt
    return src, [decoder_start, *tgt], [IGNORE, *tgt]
