"""`python -m bench perf`: the speed benchmark of a grid, as the README reports it, and
(`--metrics`) of the E2E metric suite, and (`--overhead`) of the training loop against a plain
PyTorch loop.

Three runs of the same grid, each in a fresh results directory: cold (an empty $BENCH_CACHE, as
on a fresh machine: the mini LM ships with the package, so nothing is built first), warm (the
cache as the cold run left it), and a rerun of the warm results (every cell skipped).
Wall-clock seconds of the whole command, as a user sees them.
"""

from __future__ import annotations

import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.progress import TaskID
from torch.nn.utils.rnn import pad_sequence

from bench.cache import cache_root
from bench.errors import UserError
from bench.progress import Progress
from bench.spec.settings import Cell, TrainConfig

if TYPE_CHECKING:
    from bench.engine.cell import BuiltModel, CellData
    from bench.engine.encoding import Encoded
    from bench.engine.training import TrainResult


def _timed_run(grid: str, results: Path, cache: Path, *extra: str, threads: int = 0) -> float:
    env = {**os.environ, "BENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "bench", "run", "--grid", grid, "--results-dir", str(results),
         *extra],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.time() - started


def executor_benchmark(grid: str) -> dict[str, object]:
    """The grid three ways: the local executor, one cell after another, on
    all cores (torch's threads) and on one thread; then as Ray tasks, one CPU each, as many at
    once as the machine has cores.

    Two ratios, because they answer two questions. `speedup_same_threads` (one-thread local /
    Ray) is what running cells side by side gains for the same work: both compute the same
    outputs byte for byte. `speedup_vs_all_cores` (all-core local / Ray) is what a user of this
    machine gains over the default, where torch already spreads one cell over every core.
    """
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        root = Path(tmp)
        local = _timed_run(grid, root / "local", cache_root())
        one_thread = _timed_run(grid, root / "one-thread", cache_root(), threads=1)
        ray = _timed_run(grid, root / "ray", cache_root(), "--executor", "ray")
    return {
        "grid": grid,
        "seconds": {
            "local_all_cores": round(local, 1),
            "local_one_thread": round(one_thread, 1),
            "ray": round(ray, 1),
        },
        "speedup_same_threads": round(one_thread / ray, 2),
        "speedup_vs_all_cores": round(local / ray, 2),
        "machine": machine(),
    }


def benchmark(grid: str, cold: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        root = Path(tmp)
        cache = root / "cache" if cold else cache_root()
        seconds: dict[str, float] = {}
        if cold:
            seconds["cold"] = _timed_run(grid, root / "cold", cache)
        seconds["warm"] = _timed_run(grid, root / "warm", cache)
        seconds["rerun"] = _timed_run(grid, root / "warm", cache)
    return {
        "grid": grid,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "machine": machine(),
    }


def machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# --- training overhead: the harness's loop against a plain PyTorch loop ----------------------


def now(device: torch.device | None = None) -> tuple[float, float]:
    """(wall clock, this process's CPU time); on a GPU once the device has done all it was
    given: the host runs ahead of a GPU, so a clock read alone times what was queued."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter(), time.process_time()


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


def _padded(rows: list[list[int]], fill: int) -> torch.Tensor:
    return pad_sequence([torch.tensor(row) for row in rows], batch_first=True, padding_value=fill)


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


def _harness_loop(cell: Cell, data: CellData, built: BuiltModel, warm: int) -> _Loop:
    seconds, cpu_seconds, result = harness_timing(cell, data, built, warm)
    return _Loop(seconds, cpu_seconds, result.losses[-1][1], _weights(built.model))


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


def _shared_dirs() -> tuple[Path, Path]:
    """The staged official data and metric vectors ($BENCH_SHARED_DATA, $BENCH_METRIC_VECTORS;
    by default `../shared/data` and `../shared/metric-vectors` beside the repository)."""
    root = Path(__file__).resolve().parents[2]
    data = Path(os.environ.get("BENCH_SHARED_DATA", root.parent / "shared" / "data"))
    vectors = Path(os.environ.get("BENCH_METRIC_VECTORS", data.parent / "metric-vectors"))
    if not (vectors / "e2e" / "tgen.txt").is_file() or not data.is_dir():
        raise UserError(
            f"no E2E metric vectors at {vectors} (data {data}): set BENCH_SHARED_DATA "
            "(and BENCH_METRIC_VECTORS) to the shared data"
        )
    return data, vectors


# The `bench score` commands the README times: task, split (None: every split the file fits)
# and the metric-vectors file of system outputs.
SCORE_COMMANDS = {
    "e2e_tgen": ("e2e", "test", "e2e/tgen.txt"),
    "webnlg_all_splits": ("webnlg", None, "webnlg/bart-large_webnlg-all.txt"),
}


def metrics_benchmark() -> dict[str, object]:
    """Wall time of the e2e suite in this process (every metric, bootstrap included) on the 630
    TGen outputs, the E2E challenge baseline (the official scorer takes 18-20 s on 2 cores);
    then of two `bench score` commands as a user runs them, each in a process of its own: TGen
    on E2E test, and the WebNLG challenge's 1,862-line file scored on seen, unseen and all."""
    from bench.metrics.suites import score_suite
    from bench.spec.registry import TASKS

    data, vectors = _shared_dirs()
    hypotheses = (vectors / "e2e" / "tgen.txt").read_text(encoding="utf-8").splitlines()
    references = [ex.references for ex in TASKS.get("e2e")().load("test", data)]
    started = time.time()
    scores = score_suite("e2e", hypotheses, references)
    seconds = time.time() - started
    commands = {
        name: _timed_score(data, vectors / file, task, split)
        for name, (task, split, file) in SCORE_COMMANDS.items()
    }
    return {
        "suite": "e2e",
        "inputs": len(hypotheses),
        "seconds": round(seconds, 1),
        "scores": {name: score.value for name, score in scores.items()},
        "commands": commands,
        "machine": machine(),
    }


def _timed_score(data: Path, predictions: Path, task: str, split: str | None) -> dict[str, object]:
    """A `bench score` command run twice, each a fresh process: its wall seconds, its CPU
    seconds (its JVMs' included) and the machine's load average when it started. The first
    run may fill caches (METEOR's paraphrase index, the references' tokens); `seconds` is the
    second's, as every later run by a user."""
    import resource
    import shlex

    if not predictions.is_file():
        raise UserError(f"no system outputs at {predictions}: set BENCH_METRIC_VECTORS")
    split_args = ["--split", split] if split else []
    command = [sys.executable, "-m", "bench", "score", "--task", task, *split_args]
    command += ["--data-dir", str(data), "--predictions", str(predictions), "--json"]
    runs = []
    for _ in range(2):
        load = round(os.getloadavg()[0], 1)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            command,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        runs.append({"seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "load_average": load})
        print(f"bench score --task {task}: {wall:.1f} s ({cpu:.1f} s CPU)", file=sys.stderr)
    shown = shlex.join(["python", *command[1:]])
    return {"command": shown, "first_run": runs[0], **runs[1]}
