"""What `perf device` feeds both sides of a comparison: the sizes of a run (`Scale`), the
training pairs and prompts (`Workload`), the harness's cell for a method, and the plain loop's
batches, so that the harness and the plain loop train and decode exactly the same tokens.

Training pairs are random words from the model's own tokenizer, each one token, so every
sequence has exactly the length asked for with any GPT-2-style tokenizer (seeded: every method
and every run sees the same text).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from bench.engine.encoding import encode_pairs
from bench.errors import UserError
from bench.spec.model_specs import checkpoint_id
from bench.spec.settings import Cell, DecodeConfig, TrainConfig

BEAMS = 5


@dataclass(frozen=True)
class Scale:
    """The sizes of a run: sequence length, training batches and steps, decoding batches."""

    seq_len: int
    train_batches: tuple[int, ...]
    steps: int
    warm: int
    decode_batches: tuple[int, ...]
    new_tokens: int
    prompt_tokens: int


def _words(tokenizer: PreTrainedTokenizerBase, wanted: int = 512) -> list[str]:
    """Words that are one token each with their leading space, so a text of n of them is n
    tokens: sequences of an exact length from any GPT-2-style tokenizer."""
    words = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        single = text[:1] == " " and text[1:].isalpha()
        if single and tokenizer.encode(text, add_special_tokens=False) == [token_id]:
            words.append(text[1:])
            if len(words) == wanted:
                break
    if len(words) < 16:
        raise UserError("the throughput benchmark needs a GPT-2-style (byte-level BPE) tokenizer")
    return words


@dataclass
class Workload:
    """Training pairs of exactly `seq_len` tokens (`source <eos> target <eos>`) and decoding
    prompts of `prompt_tokens`, random words from the model's tokenizer (seeded)."""

    pairs: list[tuple[str, str]]
    prompts: list[str]

    @classmethod
    def make(cls, tokenizer: PreTrainedTokenizerBase, scale: Scale) -> Workload:
        words, rng = _words(tokenizer), random.Random(0)

        def text(n: int) -> str:
            return " ".join(rng.choices(words, k=n))

        source = scale.seq_len // 2 - 1  # each text is framed by an eos
        rows = (scale.warm + scale.steps) * max(scale.train_batches)
        pairs = [(text(source), text(scale.seq_len - source - 2)) for _ in range(rows)]
        prompts = [text(scale.prompt_tokens - 1) for _ in range(max(scale.decode_batches))]
        return cls(pairs, prompts)


def train_config(scale: Scale, batch: int) -> TrainConfig:
    return TrainConfig(epochs=1, max_steps=scale.warm + scale.steps, batch_size=batch)


def workload_cell(spec: str, method: str, scale: Scale, batch: int) -> Cell:
    """A cell of `method` on `spec` with its default settings, as a grid would expand it."""
    decode = DecodeConfig(num_beams=BEAMS, max_new_tokens=scale.new_tokens)
    return Cell(
        task="throughput", task_version="1", splits=(), eval_limit=None, method=method,
        label=method, settings={}, model=spec, checkpoint=checkpoint_id(spec), seed=0,
        n_train=None, train=train_config(scale, batch), decode=decode,
    )  # fmt: skip


def plain_steps(
    tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]], config: TrainConfig,
    seq_len: int,
) -> list[list[Any]]:  # fmt: skip
    """The plain loop's optimizer steps: the pairs encoded as the harness does, in batches."""
    encoded = encode_pairs(tokenizer, pairs, config)
    if {len(ids) for _, ids, _ in encoded} != {seq_len}:
        raise RuntimeError(f"the workload's sequences are not all {seq_len} tokens long")
    size = config.batch_size
    return [encoded[i : i + size] for i in range(0, len(encoded), size)]
