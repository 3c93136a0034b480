"""The two training loops every training benchmark races, each timed from the end of its
`warm`-th optimizer step to the end of its last:

- `harness_timing`: the harness's own loop, `bench.engine.training.train` exactly as a cell runs
  it (`bench.engine.cell.train_model`), timed through its progress display (`_StepClock`), so
  nothing is added to the loop to time it;
- `plain_loop`: what one writes by hand around a transformers (or PEFT, or `adapters`) model,
  in the same precision and with the same optimizer, the reference the harness must keep up with.

`perf overhead` races them on the same model and batches (and checks that they train the same
weights); `perf device` races the harness against each method's plain-library equivalent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from rich.progress import TaskID
from torch.nn.utils.rnn import pad_sequence

from bench.perf.machine import now
from bench.progress import Progress
from bench.spec.settings import Cell, TrainConfig

if TYPE_CHECKING:
    from bench.engine.cell import BuiltModel, CellData
    from bench.engine.encoding import Encoded
    from bench.engine.training import TrainResult


class _StepClock(Progress):
    """A silent progress display that notes when each update comes. `train` advances its bar
    once before the first optimizer step and once after each, so `stamps[k]` is when step k
    ended (`stamps[0]`: when stepping began), as (wall clock, this process's CPU time).
    `sync_at`: the stamp that first waits for `device` (a GPU), where the timed steps start;
    one wait, as in a plain loop, so the harness's steps otherwise run as in a cell."""

    def __init__(self, sync_at: int | None = None, device: torch.device | None = None) -> None:
        super().__init__(disable=True)
        self.stamps: list[tuple[float, float]] = []
        self.sync_at, self.device = sync_at, device

    def update(self, task_id: TaskID, **changes: Any) -> None:
        self.stamps.append(now(self.device if len(self.stamps) == self.sync_at else None))
        super().update(task_id, **changes)


def harness_timing(
    cell: Cell, data: CellData, built: BuiltModel, warm: int
) -> tuple[float, float, TrainResult]:
    """`bench.engine.training.train` as a cell runs it (`bench.engine.cell.train_model`), timed from
    the end of its `warm`-th optimizer step to the end of its last: (wall, CPU seconds, its result).
    On a GPU the clock waits for the device at those two points only (the last step's end is
    when `train` has returned: its final loss reading waits for it)."""
    from bench.engine.cell import train_model

    cuda = built.device.type == "cuda"
    clock = _StepClock(warm if cuda else None, built.device)
    result = train_model(cell, data, built, clock, None)
    wall, cpu = clock.stamps[warm]
    end_wall, end_cpu = now(built.device) if cuda else clock.stamps[-1]
    return end_wall - wall, end_cpu - cpu, result


def _padded(rows: list[list[int]], fill: int) -> torch.Tensor:
    return pad_sequence([torch.tensor(row) for row in rows], batch_first=True, padding_value=fill)


def plain_loop(
    model: torch.nn.Module,
    steps: list[list[Encoded]],
    pad_id: int,
    config: TrainConfig,
    device: torch.device,
    seed: int,
    warm: int,
    dropout: bool = True,
) -> tuple[float, float, float]:
    """What one would write by hand around a transformers model (or a PEFT or `adapters` one):
    pad each step's examples, forward, the target cross-entropy, backward, clip, AdamW and the
    linear schedule; no progress bar, no checks, no checkpoints. In the precision the harness
    resolves `config.precision` to (bf16 autocast on a GPU that has it, fp16 with a loss
    scaler, fp32 on CPU: the plain computation) and with fused AdamW on CUDA, as
    `bench.engine.training` runs, so the two loops do the same arithmetic on a GPU too. `dropout`:
    the model trains in train mode (else eval: a frozen base whose dropout a method keeps off).
    The loss is read once, at the end. Returns (wall, CPU seconds of the steps after the
    first `warm`, last loss)."""
    from transformers import get_linear_schedule_with_warmup

    from bench.engine.adapted import IGNORE
    from bench.engine.precision import autocast, grad_scaler, resolve_precision

    precision = resolve_precision(config.precision, device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(
        parameters, lr=config.lr, weight_decay=config.weight_decay, **fused
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, len(steps))
    scaler = grad_scaler(precision, device)
    torch.manual_seed(seed)  # dropout draws the same masks as in the harness
    model.train(dropout)
    wall, cpu = now()
    for step, chunk in enumerate(steps):
        if step == warm:
            wall, cpu = now(device)
        ids = _padded([ex[1] for ex in chunk], pad_id)
        mask = _padded([[1] * len(ex[1]) for ex in chunk], 0)
        labels = _padded([ex[2] for ex in chunk], IGNORE)
        with autocast(precision, device):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(),
                labels[:, 1:].flatten().to(device),
                ignore_index=IGNORE,
            )
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # fp16: clip the true gradients
        torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    last = loss.item()
    end_wall, end_cpu = now()
    return end_wall - wall, end_cpu - cpu, last
