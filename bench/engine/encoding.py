"""Text -> token ids, the same way for training and decoding.

Examples are `source <eos> target <eos>` with the loss on the target tokens only, the paper's
format for GPT-2 (`src bos tgt eos`, where bos == eos); an encoder-decoder model reads the source
in its encoder and `<start> target` in its decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from bench.engine.adapted import IGNORE
from bench.spec.settings import TrainConfig

Encoded = tuple[list[int], list[int], list[int]]  # (encoder ids, ids, labels)

CHUNK = 1024  # distinct texts per tokenizer call: few calls, small outputs for long texts


def ends(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], int]:
    """What frames every text: a bos where the tokenizer's bos is its own token (BART's `<s>`, as
    in its pretraining; GPT-2's bos is its eos, which only ends sequences), and the eos."""
    start = [tokenizer.bos_token_id] if tokenizer.bos_token_id != tokenizer.eos_token_id else []
    return start, tokenizer.eos_token_id


def frame(ids: list[int], framing: tuple[list[int], int], max_tokens: int) -> list[int]:
    """Tokenized text cut to fit `max_tokens` with its `ends` around it."""
    start, eos = framing
    return [*start, *ids[: max_tokens - 1 - len(start)], eos]


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int) -> list[int]:
    """`text` as framed ids; the text gets a leading space, as mid-sentence words have."""
    ids = tokenizer.encode(" " + text, add_special_tokens=False)
    return frame(ids, ends(tokenizer), max_tokens)


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_tokens: int
) -> list[list[int]]:
    """`encode_text` of every text, the same ids, tokenizing each distinct text once (E2E's 42K
    training pairs hold 4.9K distinct sources: half the texts to tokenize), `CHUNK` texts per
    tokenizer call, which a fast tokenizer spreads over the machine's cores."""
    framing = ends(tokenizer)  # once: the tokenizer's special-token attributes are slow to read
    distinct = list(dict.fromkeys(texts))
    framed: dict[str, list[int]] = {}
    for at in range(0, len(distinct), CHUNK):
        chunk = distinct[at : at + CHUNK]
        spaced = [" " + text for text in chunk]
        batch = tokenizer(spaced, add_special_tokens=False, return_attention_mask=False)
        for text, ids in zip(chunk, batch["input_ids"], strict=True):
            framed[text] = frame(ids, framing, max_tokens)
    return [framed[text][:] for text in texts]  # each row its own list, as encode_text's


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
    return join(src, tgt, decoder_start)


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    config: TrainConfig,
    decoder_start: int | None = None,
) -> list[Encoded]:
    """`encode_pair` of every (source, target), the same ids, tokenized in batches."""
    sources = encode_texts(tokenizer, [source for source, _ in pairs], config.max_source_tokens)
    targets = encode_texts(tokenizer, [target for _, target in pairs], config.max_target_tokens)
    return [join(src, tgt, decoder_start) for src, tgt in zip(sources, targets, strict=True)]


def join(src: list[int], tgt: list[int], decoder_start: int | None) -> Encoded:
    """An example from its framed source and target (see `encode_pair`)."""
    if decoder_start is None:
        return [], src + tgt, [IGNORE] * len(src) + tgt
    return src, [decoder_start, *tgt], [IGNORE, *tgt]
