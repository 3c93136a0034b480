"""`python -m bench perf overhead`: what the harness's training loop costs over a plain PyTorch
loop, measured so that the ratio is the harness's overhead alone.

Both loops (`bench.perf.loops`) train the default grid's mini-e2e fine-tuning cell in one
process, from the same weights, on the same batches in the same order with the same dropout
masks, so they must end with the same weights bit for bit: the check that they did the same
work, which makes their tokens/s comparable.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from bench.errors import UserError
from bench.perf.loops import harness_timing, plain_loop
from bench.perf.machine import machine
from bench.spec.settings import Cell

if TYPE_CHECKING:
    from bench.engine.cell import BuiltModel, CellData
    from bench.engine.encoding import Encoded


@dataclass
class _Loop:
    """One loop's measured run: wall and CPU seconds of its timed steps (CPU time counts
    every thread, and less of what other work on the machine takes), its last step's loss and
    the trained weights (equal in both loops when they trained the same thing)."""

    seconds: float
    cpu_seconds: float
    loss: float
    weights: dict[str, torch.Tensor]


def _overhead_cell(model: str, steps: int) -> tuple[Cell, CellData]:
    """The default grid's mini-e2e fine-tuning cell on `model`, stopped after `steps`
    optimizer steps and without a dev loss (the bare loop scores none), and its data."""
    from bench.engine.cell import prepare_data
    from bench.spec.grid import expand, load_grid
    from bench.spec.task import training_pairs

    spec = load_grid("mini", model_override=model)[0]
    cell = next(c for c in expand(spec) if c.task == "mini-e2e" and c.method == "finetune")
    data = prepare_data(cell, None)
    per_epoch = math.ceil(len(training_pairs(data.train)) / cell.train.batch_size)
    train = cell.train.model_copy(
        update={"max_steps": steps, "epochs": math.ceil(steps / per_epoch), "dev_examples": 0}
    )
    return cell.model_copy(update={"train": train}), data


def _step_order(built: BuiltModel, data: CellData, seed: int, total: int) -> list[list[Encoded]]:
    """The examples of each optimizer step, as the harness draws them: each epoch's order from
    one generator seeded like `train`'s (the grid's cell has no gradient accumulation)."""
    from bench.engine.encoding import encode_pairs
    from bench.engine.training import length_grouped_steps
    from bench.spec.task import training_pairs

    config = built.train_config
    examples = encode_pairs(built.loaded.tokenizer, training_pairs(data.train), config)
    rng = random.Random(seed)
    steps: list[list[Encoded]] = []
    while len(steps) < total:
        steps += length_grouped_steps(examples, config.batch_size, rng)
    return steps[:total]


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().cpu().clone() for name, t in model.state_dict().items()}


def _harness_loop(cell: Cell, data: CellData, built: BuiltModel, warm: int) -> _Loop:
    seconds, cpu_seconds, result = harness_timing(cell, data, built, warm)
    return _Loop(seconds, cpu_seconds, result.losses[-1][1], _weights(built.model))


def _bare_loop(built: BuiltModel, steps: list[list[Encoded]], seed: int, warm: int) -> _Loop:
    """`plain_loop` around the harness's transformers model, ending with its weights."""
    pad_id = built.loaded.tokenizer.eos_token_id
    seconds, cpu_seconds, last = plain_loop(
        built.model.base, steps, pad_id, built.train_config, built.device, seed, warm
    )
    return _Loop(seconds, cpu_seconds, last, _weights(built.model))


def overhead_benchmark(
    model: str = "mini", steps: int = 60, warm: int = 5, rounds: int = 3
) -> dict[str, object]:
    """Training throughput of the harness's loop against a bare PyTorch loop, in one process:
    the default grid's mini-e2e fine-tuning cell, `warm` untimed steps then `steps` timed ones,
    tokens being the non-pad tokens of the timed steps. Both loops start from the same weights
    and see the same batches in the same order with the same dropout masks, so they must end
    with the same weights bit for bit (`identical`): proof that they did the same work.

    Each round runs both loops, in alternating order; the best round of each counts, as the
    least disturbed by other work on the machine. `cpu_ratio` is the same ratio in CPU time,
    which other work on a shared machine disturbs less than the wall clock.
    """
    from bench.engine.cell import build

    if steps < 1 or warm < 0 or rounds < 1:
        raise UserError("the overhead benchmark needs steps >= 1, warm >= 0 and rounds >= 1")
    cell, data = _overhead_cell(model, warm + steps)
    order: list[list[Encoded]] = []
    runs: dict[str, list[_Loop]] = {"harness": [], "bare": []}
    for round_ in range(rounds):
        for loop in ("harness", "bare")[:: 1 if round_ % 2 == 0 else -1]:
            built = build(cell, {})
            if loop == "harness":
                runs[loop].append(_harness_loop(cell, data, built, warm))
                continue
            order = order or _step_order(built, data, cell.seed, warm + steps)
            runs[loop].append(_bare_loop(built, order, cell.seed, warm))
    tokens = sum(len(ex[1]) for chunk in order[warm:] for ex in chunk)
    speed = {loop: tokens / min(run.seconds for run in done) for loop, done in runs.items()}
    cpu = {loop: min(run.cpu_seconds for run in done) for loop, done in runs.items()}
    first = runs["harness"][0]
    identical = all(
        run.loss == first.loss and run.weights.keys() == first.weights.keys()
        and all(torch.equal(run.weights[k], first.weights[k]) for k in first.weights)
        for run in runs["harness"] + runs["bare"]
    )  # fmt: skip
    return {
        "model": model,
        "cell": f"{cell.task} / {cell.method}, batch {cell.train.batch_size}",
        "warm_steps": warm,
        "timed_steps": steps,
        "tokens": tokens,
        "seconds": {loop: [round(run.seconds, 3) for run in done] for loop, done in runs.items()},
        "cpu_seconds": {
            loop: [round(run.cpu_seconds, 3) for run in done] for loop, done in runs.items()
        },
        "harness_tokens_per_s": round(speed["harness"], 1),
        "bare_tokens_per_s": round(speed["bare"], 1),
        "ratio": round(speed["harness"] / speed["bare"], 3),
        "cpu_ratio": round(cpu["bare"] / cpu["harness"], 3),
        "final_loss": {loop: done[0].loss for loop, done in runs.items()},
        "identical": identical,
        "machine": machine(),
    }


def overhead_lines(result: dict[str, Any]) -> str:
    """The overhead benchmark's numbers as a user reads them (`--json` prints them all)."""
    same = "yes, bit for bit" if result["identical"] else "NO: the comparison is not fair"
    return "\n".join(
        [
            f"harness_tokens_per_s  {result['harness_tokens_per_s']:,.0f}",
            f"bare_tokens_per_s     {result['bare_tokens_per_s']:,.0f}",
            f"ratio                 {result['ratio']:.3f} (goal: at least 0.95; in CPU time "
            f"{result['cpu_ratio']:.3f})",
            f"same training         {same} (final loss {result['final_loss']['harness']:.6f})",
        ]
    )
