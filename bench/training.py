"""The training loop: AdamW, linear schedule with warmup, gradient accumulation, seeded.

Readable top to bottom on purpose. Examples are encoded by `bench.encoding` (the loss is on the
target tokens only); the model is any `AdaptedLM`, whose method decides what is trained.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from bench.adapted import IGNORE, AdaptedLM, Batch, target_loss
from bench.encoding import Encoded, encode_pair
from bench.progress import Progress, tracker
from bench.spec import TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the cell fails with this reason and the grid goes on."""


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean train loss)
    dev_losses: list[tuple[int, float]] = field(default_factory=list)  # (epoch, dev loss)


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
