"""The training loop: AdamW, linear schedule with warmup, gradient accumulation, seeded.

Readable top to bottom on purpose. Examples are encoded by `bench.encoding` (the loss is on the
target tokens only); the model is any `AdaptedLM`, whose method decides what is trained.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from bench.adapted import IGNORE, AdaptedLM, Batch, target_loss
from bench.encoding import Encoded, encode_pairs
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
    resumed_at: int | None = None  # the step a checkpoint resumed from, if one did


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


@dataclass
class Checkpointing:
    """Where a cell saves its resumable training state, and how often: in the cell's own
    checkpoint folder, every `every_seconds` (0: after every optimizer step)."""

    folder: Path
    every_seconds: float = 600.0
    saved_at: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return self.folder / "training.pt"

    def due(self) -> bool:
        return time.time() - self.saved_at >= self.every_seconds

    def save(self, state: dict[str, Any]) -> None:
        """Atomically: a kill during the save leaves the previous checkpoint whole."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        with partial.open("wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, self.path)
        self.saved_at = time.time()

    def load(self) -> dict[str, Any] | None:
        return torch.load(self.path, weights_only=False) if self.path.is_file() else None


def train(
    model: AdaptedLM,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[tuple[str, str]],
    dev_pairs: list[tuple[str, str]],
    config: TrainConfig,
    seed: int,
    device: torch.device,
    progress: Progress | None = None,
    checkpoint: Checkpointing | None = None,
) -> TrainResult:
    """Train `model` in place. With `checkpoint`, the state is saved as it goes and a saved
    state is resumed: the result is then exactly that of an uninterrupted run."""
    torch.manual_seed(seed)
    order_rng = random.Random(seed)
    pad_id = tokenizer.eos_token_id
    start = model.decoder_start_token_id if model.is_encoder_decoder else None
    examples = encode_pairs(tokenizer, pairs, config, start)
    dev = encode_pairs(tokenizer, dev_pairs[: config.dev_examples], config, start)  # 0: none

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
    saved = checkpoint.load() if checkpoint is not None else None
    first_epoch, skip = resume(saved, model, optimizer, scheduler, result, order_rng)
    started = time.time() - result.seconds
    model.train()
    with tracker(progress, "  training", int(total_steps)) as advance:
        advance(result.steps)
        for epoch in range(first_epoch, config.epochs):
            epoch_order = order_rng.getstate()  # a resumed epoch redraws the same order
            for position, chunk in enumerate(length_grouped_steps(examples, per_step, order_rng)):
                if epoch == first_epoch and position < skip:
                    continue
                step_loss = optimizer_step(model, chunk, config, pad_id, device, result.steps)
                torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                result.steps += 1
                result.losses.append((result.steps, step_loss))
                if checkpoint is not None and checkpoint.due():
                    result.seconds = time.time() - started
                    checkpoint.save(
                        training_state(
                            model, optimizer, scheduler, result, (epoch, position + 1, epoch_order)
                        )
                    )
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


def optimizer_step(
    model: AdaptedLM,
    chunk: list[Encoded],
    config: TrainConfig,
    pad_id: int,
    device: torch.device,
    step: int,
) -> float:
    """Forward and backward over one optimizer step's examples, in micro-batches weighted by
    their size; returns the step's mean loss."""
    step_loss = 0.0
    for micro in range(0, len(chunk), config.batch_size):
        batch = collate(chunk[micro : micro + config.batch_size], pad_id)
        loss = model.training_loss(batch.to(device))
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"training loss is {loss.item()} at step {step}")
        share = len(batch.input_ids) / len(chunk)
        (loss * share).backward()
        step_loss += loss.item() * share
    return step_loss


def training_state(
    model: AdaptedLM,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    result: TrainResult,
    place: tuple[int, int, Any],
) -> dict[str, Any]:
    """Everything a resumed run needs to continue exactly: the trained weights, the optimizer
    and schedule, the losses so far, `place` (the epoch, the optimizer steps done in it, and
    the data-order generator's state at its start), and every random state."""
    epoch, position, epoch_order = place
    return {
        "weights": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "result": asdict(result),
        "epoch": epoch,
        "position": position,
        "epoch_order": epoch_order,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        },
    }


def resume(
    state: dict[str, Any] | None,
    model: AdaptedLM,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    result: TrainResult,
    order_rng: random.Random,
) -> tuple[int, int]:
    """Load a saved `training_state` (if any) into the fresh objects: (epoch, steps to skip)."""
    if state is None:
        return 0, 0
    _, unexpected = model.load_state_dict(state["weights"], strict=False)
    if unexpected:
        raise ValueError(f"the training checkpoint does not fit this model: {unexpected[:3]}")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    saved = state["result"]
    result.steps = result.resumed_at = saved["steps"]
    result.seconds = saved["seconds"]
    result.losses = [tuple(x) for x in saved["losses"]]
    result.dev_losses = [tuple(x) for x in saved["dev_losses"]]
    order_rng.setstate(state["epoch_order"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return state["epoch"], state["position"]
