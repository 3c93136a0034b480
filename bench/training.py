"""The training loop: AdamW, linear schedule with warmup, gradient accumulation, seeded.

Readable top to bottom on purpose. Examples are `source <eos> target <eos>` with the loss on the
target tokens only, the paper's format for GPT-2 (`src bos tgt eos`, where bos == eos); an
encoder-decoder model reads the source in its encoder and the target in its decoder.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from bench.adapted import IGNORE, AdaptedLM, Batch, target_loss
from bench.progress import Progress, tracker


class TrainConfig(BaseModel):
    """Training settings of a cell; a method entry in a grid may override any of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(5, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: str = Field("linear", pattern="^(linear|constant)$")
    max_grad_norm: float = Field(1.0, gt=0)
    max_source_tokens: int = Field(512, ge=8)
    max_target_tokens: int = Field(128, ge=8)
    dev_examples: int = Field(256, ge=0, description="dev pairs scored for the dev loss")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the cell fails with this reason and the grid goes on."""


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean train loss)
    dev_losses: list[tuple[int, float]] = field(default_factory=list)  # (epoch, dev loss)


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


def _right_pad(rows: Sequence[list[int]], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), fill)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def collate(encoded: Sequence[Encoded], pad_id: int) -> Batch:
    """Right-padded tensors; the source goes to the encoder only where there is one."""
    input_ids, attention = _right_pad([ids for _, ids, _ in encoded], pad_id)
    labels, _ = _right_pad([labs for _, _, labs in encoded], IGNORE)
    source = _right_pad([src for src, _, _ in encoded], pad_id) if encoded[0][0] else None
    return Batch(input_ids, attention, labels, source)


def length_grouped_steps(
    examples: list[Encoded], per_step: int, rng: random.Random
) -> list[list[Encoded]]:
    """Examples for each optimizer step, in random order but with similar lengths together.

    Shuffle, sort within windows of 50 steps, then shuffle the steps: padding shrinks (about a
    quarter of the tokens on the mini tasks) while every epoch still sees every example once.
    """
    order = examples[:]
    rng.shuffle(order)
    window = 50 * per_step
    steps = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lambda ex: len(ex[0]) + len(ex[1]))
        steps += [part[i : i + per_step] for i in range(0, len(part), per_step)]
    rng.shuffle(steps)
    return steps


@torch.no_grad()
def evaluate_loss(
    model: AdaptedLM, encoded: list[Encoded], batch_size: int, pad_id: int, device: torch.device
) -> float:
    """Mean target cross-entropy per token (never a method's extra training terms)."""
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start : start + batch_size], pad_id).to(device)
        n = int((batch.labels[:, 1:] != IGNORE).sum())
        logits, _ = model(batch.input_ids, batch.attention_mask, source=batch.source)
        total += target_loss(logits, batch.labels).item() * n
        tokens += n
    model.train()
    return total / max(tokens, 1)


def train(
    model: AdaptedLM,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[tuple[str, str]],
    dev_pairs: list[tuple[str, str]],
    config: TrainConfig,
    seed: int,
    device: torch.device,
    progress: Progress | None = None,
) -> TrainResult:
    torch.manual_seed(seed)
    order_rng = random.Random(seed)
    pad_id = tokenizer.eos_token_id
    start = model.decoder_start_token_id if model.is_encoder_decoder else None
    examples = [encode_pair(tokenizer, s, t, config, start) for s, t in pairs]
    dev = [encode_pair(tokenizer, s, t, config, start) for s, t in dev_pairs[: config.dev_examples]]

    per_step = config.batch_size * config.grad_accum
    steps_per_epoch = math.ceil(len(examples) / per_step)
    total_steps = min(config.max_steps or math.inf, config.epochs * steps_per_epoch)
    parameters = model.trainable_parameters()
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.schedule == "linear":
        scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, total_steps)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / max(1, config.warmup_steps))
        )

    result = TrainResult(steps=0, seconds=0.0)
    started = time.time()
    model.train()
    with tracker(progress, "  training", int(total_steps)) as advance:
        for epoch in range(config.epochs):
            for chunk in length_grouped_steps(examples, per_step, order_rng):
                step_loss = 0.0
                for micro in range(0, len(chunk), config.batch_size):
                    batch = collate(chunk[micro : micro + config.batch_size], pad_id)
                    loss = model.training_loss(batch.to(device))
                    if not torch.isfinite(loss):
                        raise TrainingDiverged(
                            f"training loss is {loss.item()} at step {result.steps}"
                        )
                    share = len(batch.input_ids) / len(chunk)  # weight micro-batches by their size
                    (loss * share).backward()
                    step_loss += loss.item() * share
                torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                result.steps += 1
                result.losses.append((result.steps, step_loss))
                advance(1, loss=step_loss)
                if result.steps >= total_steps:
                    break
            if dev:
                result.dev_losses.append(
                    (epoch + 1, evaluate_loss(model, dev, config.batch_size, pad_id, device))
                )
            if result.steps >= total_steps:
                break
    result.seconds = time.time() - started
    return result
