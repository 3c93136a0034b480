"""One cell, start to finish, as a function: `run_cell(cell, data_dir, dependencies) -> CellRecord`.

Named phases, in order: prepare the data, build the model and method, train, generate on every
eval split (each distinct input once), score, package the record. It reads the task's data, the
base model, and the folders of the stored cells a hybrid reuses, and writes only its own mid-cell
checkpoints (when given a folder for them): the driver (`bench.run.runner`) writes the record
(`bench.results.store.write_record`), so the same function runs in a worker process or on another
machine.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import random
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as serialize
from transformers import PreTrainedTokenizerBase

from bench.data.files import file_sha256
from bench.engine.adapted import AdaptedLM, BuildContext, build_method, count
from bench.engine.generation import DecodeStats, generate
from bench.engine.loading import LoadedModel, load_model
from bench.engine.precision import resolve_precision
from bench.engine.record import STORED, CellRecord, ParamCounts, Prediction, Score
from bench.engine.training import (
    Checkpointing,
    TrainResult,
    random_states,
    set_random_states,
    train,
)
from bench.metrics.suites import missing, score_suite
from bench.progress import Progress
from bench.spec.registry import METHODS, TASKS
from bench.spec.settings import Cell, TrainConfig
from bench.spec.task import DEV, TRAIN, Example, Task, low_data_subset, training_pairs

PACKAGES = (
    "prefix-bench",
    "torch",
    "transformers",
    "tokenizers",
    "adapters",
    "peft",
    "sacrebleu",
    "rouge-score",
)


@dataclass
class CellData:
    task: Task
    train: list[Example]
    dev: list[Example]
    eval: dict[str, list[Example]]  # split -> its first `eval_limit` inputs
    files: dict[str, str]  # path -> sha256 of every data file read


@dataclass
class BuiltModel:
    loaded: LoadedModel
    model: AdaptedLM
    dependencies: dict[str, AdaptedLM]
    total: int  # parameters of the base
    trained: int  # parameters the optimizer updates
    train_config: TrainConfig  # the cell's, with sources cut to fit the model's positions
    device: torch.device


def run_cell(
    cell: Cell,
    data_dir: Path | None,
    dependencies: dict[str, Path] | None = None,
    progress: Progress | None = None,
    checkpoints: Checkpointing | None = None,
    on_phase: Callable[[str], None] = lambda phase: None,
) -> CellRecord:
    """Train and evaluate `cell`. `dependencies` maps a hybrid's roles to the folders of the
    finished cells it reuses (`cell.depends`). With `checkpoints`, training saves its state
    there as it goes and resumes a state saved by an interrupted run: the only files this
    writes; a state there that is not this cell's own is set aside (`checkpoint_identity`).
    `on_phase` hears each phase's name as it starts (a worker tells its driver)."""
    began = time.time()
    if checkpoints is not None:
        checkpoints = replace(checkpoints, identity=checkpoint_identity(cell))
    seed_everything(cell.seed)
    on_phase("data")
    data = prepare_data(cell, data_dir)
    built, result, training_began = build_and_train(
        cell, data, dependencies or {}, progress, checkpoints, on_phase
    )
    timings = {"setup": training_began - began, "train": result.seconds}
    built.model.finalize()
    clock = time.time()
    on_phase("generate")
    outputs, decoding = generate_outputs(cell, data, built, progress)
    timings["generate"] = time.time() - clock
    clock = time.time()
    on_phase("score")
    scores, unscored = score_outputs(data, outputs)
    timings["score"] = time.time() - clock
    record = package(
        cell,
        data,
        built,
        result,
        (outputs, decoding),
        scores,
        unscored,
        timings,
        dependencies or {},
    )
    record.provenance["ran"] = {"from": began, "until": time.time()}  # wall clock, this process
    return record


def prepare_data(cell: Cell, data_dir: Path | None) -> CellData:
    task = TASKS.get(cell.task)()
    # Low-data subsets depend on the sample index, not the training seed: the paper trains each
    # of its sampled datasets with several seeds.
    train_examples = low_data_subset(task.load(TRAIN, data_dir), cell.n_train, cell.sample)
    dev_examples = task.load(DEV, data_dir)
    if cell.n_train is not None:  # the paper's low-data dev set: 30% of the training size
        dev_examples = low_data_subset(dev_examples, max(1, int(0.3 * cell.n_train)), cell.sample)
    evaluated = {split: task.load(split, data_dir)[: cell.eval_limit] for split in cell.splits}
    files = {str(p): file_sha256(p) for p in task.data_files(data_dir)}
    return CellData(task, train_examples, dev_examples, evaluated, files)


def build(cell: Cell, dependencies: dict[str, Path]) -> BuiltModel:
    run_device = device()
    loaded = load_model(cell.model, cell.seed)
    method = METHODS.get(cell.method)
    total = count(list(loaded.model.parameters()))
    reused = {
        role: load_stored_model(folder)[0].to(run_device) for role, folder in dependencies.items()
    }
    model = build_method(
        method,
        loaded.model,
        method.Settings.model_validate(cell.settings),
        BuildContext(loaded.tokenizer, reused),
    )
    model.to(run_device)
    return BuiltModel(
        loaded,
        model,
        reused,
        total,
        count(model.trainable_parameters()),
        fit_to_positions(cell, loaded.model.config, model.prefix_length),
        run_device,
    )


def build_and_train(
    cell: Cell,
    data: CellData,
    dependencies: dict[str, Path],
    progress: Progress | None,
    checkpoints: Checkpointing | None,
    on_phase: Callable[[str], None],
) -> tuple[BuiltModel, TrainResult, float]:
    """The trained model, its training's result and when that training began.

    Out of memory while training, the attempt's model, optimizer and activations are dropped
    and the model is built again from the same random state (so exactly as the first time);
    it trains in forward passes of half as many examples (rounded up), each optimizer step
    keeping its examples, so resuming the cell's last checkpoint (if the attempt saved one) is
    valid. Without one, the result is exactly that of training in those passes from the start
    (for an even batch_size: half of it and twice the grad_accum). At one example a pass the
    cell fails. The time spent in failed attempts counts as setup.
    """
    fresh, micro_batch, retries = random_states(), None, 0
    while True:
        on_phase("build")
        built = build(cell, dependencies)
        began = time.time()
        on_phase("train")
        try:
            result = train_model(cell, data, built, progress, checkpoints, micro_batch)
        except torch.OutOfMemoryError as error:
            micro_batch = micro_batch or built.train_config.batch_size
            if micro_batch == 1:
                raise CellFailed(out_of_memory_reason(error, cell, retries)) from error
        else:
            result.oom_retries = retries
            return built, result, began
        micro_batch, retries = (micro_batch + 1) // 2, retries + 1
        del built  # the failed attempt's model and gradients; its optimizer went with the error
        free_memory()
        set_random_states(fresh)


def checkpoint_identity(cell: Cell) -> dict[str, Any]:
    """What ties a mid-cell checkpoint to `cell`, stamped on every state it saves: the cell's
    id, the whole digest of its resolved config (the id is its first 16 digits), its model and
    bench's version. A state saved by another cell (another seed's, copied in), for another
    config or by another release is not this cell's to resume: its result would not be the
    cell's own. The git sha is left out on purpose: pulling a commit would throw away hours of
    an interrupted cell, and an uncommitted edit leaves the sha alone anyway."""
    config = cell.model_dump(mode="json", exclude={"label", "depends"})  # as `Cell.id` hashes
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    provenance = collect_provenance()
    return {
        "cell": cell.id,
        "config_sha256": hashlib.sha256(blob.encode()).hexdigest(),
        "model": cell.checkpoint,
        "bench": provenance["versions"]["prefix-bench"],
    }


def out_of_memory_reason(error: torch.OutOfMemoryError, cell: Cell, retries: int) -> str:
    """Why a cell failed that ran out of memory even one example a pass: a smaller batch is
    no longer the fix."""
    halved = " halved down to 1" if retries else ""
    return (
        f"out of memory training one example at a time (train.batch_size "
        f"{cell.train.batch_size}{halved}: {str(error).splitlines()[0]}); lower "
        "train.max_source_tokens or train.max_target_tokens, or use a smaller model or a "
        "larger GPU"
    )


def free_memory() -> None:
    """Return what the dropped objects held: cycles collected, CUDA's cached blocks released."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def train_model(
    cell: Cell,
    data: CellData,
    built: BuiltModel,
    progress: Progress | None,
    checkpoints: Checkpointing | None,
    micro_batch: int | None = None,
) -> TrainResult:
    if not built.trained:  # an ensemble only decodes its dependencies
        precision = resolve_precision(built.train_config.precision, built.device)
        return TrainResult(steps=0, seconds=0.0, precision=precision)
    return train(
        built.model,
        built.loaded.tokenizer,
        training_pairs(data.train),
        training_pairs(data.dev),
        built.train_config,
        cell.seed,
        built.device,
        progress=progress,
        checkpoint=checkpoints,
        micro_batch=micro_batch,
    )


def generate_outputs(
    cell: Cell, data: CellData, built: BuiltModel, progress: Progress | None
) -> tuple[dict[str, str], DecodeStats]:
    """Source -> output, each distinct source of every eval split decoded once, in the
    precision the cell trains in; and what decoding did."""
    sources = list(dict.fromkeys(ex.source for exs in data.eval.values() for ex in exs))
    stats = DecodeStats()
    outputs = generate(
        built.model,
        built.loaded.tokenizer,
        sources,
        cell.decode,
        built.train_config.max_source_tokens,
        built.device,
        progress=progress,
        precision=resolve_precision(built.train_config.precision, built.device),
        stats=stats,
    )
    return dict(zip(sources, outputs, strict=True)), stats


def score_outputs(
    data: CellData, outputs: dict[str, str]
) -> tuple[list[Score], dict[str, dict[str, str]]]:
    """The task's metric suite on every split: the scores, and per split the metrics that could
    not run (no Java, a crashed JVM) with why; a missing metric is never a stored 0, and the
    other metrics of its suite are still scored."""
    scores, unscored = [], {}
    for split, examples in data.eval.items():
        hypotheses = [outputs[ex.source] for ex in examples]
        values = score_suite(data.task.suite, hypotheses, [ex.references for ex in examples])
        tagged = data.task.split(split)
        scores += [
            Score(
                split,
                tagged.ood,
                name,
                score.value,
                len(examples),
                score.low,
                score.high,
                tagged.mixed,
            )
            for name, score in values.items()
            if score.value is not None
        ]
        if reasons := missing(values):
            unscored[split] = reasons
    return scores, unscored


def package(
    cell: Cell,
    data: CellData,
    built: BuiltModel,
    result: TrainResult,
    decoded: tuple[dict[str, str], DecodeStats],
    scores: list[Score],
    unscored: dict[str, dict[str, str]],
    timings: dict[str, float],
    dependencies: dict[str, Path],
) -> CellRecord:
    outputs, decoding = decoded
    stored = {k: v.contiguous().cpu() for k, v in built.model.stored_state().items()}
    blob = serialize(stored)
    stored_count, stored_bytes = count(stored), len(blob)
    if METHODS.get(cell.method).keeps_dependencies:  # it decodes with their checkpoints
        for role, dependency in built.dependencies.items():
            stored_count += count(dependency.stored_state())
            stored_bytes += (dependencies[role] / STORED).stat().st_size
    return CellRecord(
        cell=cell,
        scores=scores,
        params=ParamCounts(built.trained, stored_count, built.total, stored_bytes),
        losses={"train": result.losses, "dev": result.dev_losses},
        timings=timings,
        provenance={
            **collect_provenance(),
            "checkpoint": built.loaded.checkpoint,
            "data_sha256": data.files,
            "data_recipe": data.task.recipe(),
            "train_examples": len(data.train),
            "train_steps": result.steps,
            "resumed_at_step": result.resumed_at,
            "precision": result.precision,  # resolved, of training and decoding
            "decoding": asdict(decoding),  # batches, new tokens, out-of-memory halvings
            "train_batch": train_batch(result),
            "set_aside_checkpoint": result.set_aside,  # found, not resumed: why, where it went
            "derived_settings": built.model.derived_settings(),
            "depends": cell.depends,
        },
        predictions={
            split: [Prediction(ex.source, outputs[ex.source], ex.references) for ex in examples]
            for split, examples in data.eval.items()
        },
        stored=blob,
        notes=training_notes(cell, result)
        + [
            f"{metric} unavailable on {cell.task} {split}: {reason}"
            for split, metrics in unscored.items()
            for metric, reason in metrics.items()
        ],
        missing=unscored,
    )


def train_batch(result: TrainResult) -> dict[str, int] | None:
    """How training split its steps (None: nothing trained): examples a forward pass, passes a
    step, and how many times running out of memory halved the first before it fitted."""
    if not result.batch_size:
        return None
    return {
        "batch_size": result.batch_size,
        "grad_accum": result.grad_accum,
        "oom_retries": result.oom_retries,
    }


def training_notes(cell: Cell, result: TrainResult) -> list[str]:
    """What training did that the user did not ask for, a line each (the runner prints them)."""
    notes = []
    if result.set_aside:
        notes.append(
            f"{cell.describe()}: its checkpoint {result.set_aside['why']}: set aside as "
            f"{result.set_aside['moved_to']}, trained from the start"
        )
    if result.oom_retries:
        notes.append(
            f"{cell.describe()}: out of memory at train.batch_size {cell.train.batch_size}: "
            f"trained {result.batch_size} examples a pass, {result.grad_accum} passes a step "
            f"({result.oom_retries} retries; the same steps)"
        )
    return notes


def load_stored_model(
    folder: Path, reused: dict[str, AdaptedLM] | None = None
) -> tuple[AdaptedLM, PreTrainedTokenizerBase]:
    """A finished cell's model from its folder (its method on a fresh base, with its stored
    weights; a hybrid's with the models of the cells it `reused`, by role) and its tokenizer."""
    cell = Cell.model_validate_json((folder / "cell.json").read_text())
    loaded = load_model(cell.model, cell.seed)
    method = METHODS.get(cell.method)
    model = build_method(
        method,
        loaded.model,
        method.Settings.model_validate(cell.settings),
        BuildContext(loaded.tokenizer, reused or {}),
    )
    model.load_stored(load_file(folder / STORED))
    model.eval()
    return model, loaded.tokenizer


def fit_to_positions(cell: Cell, config: Any, prefix_length: int) -> TrainConfig:
    """The cell's training config with sources cut to fit the model's positions: a decoder-only
    model sees prefix + source + target (or generated tokens) in one window, so long inputs
    (WebNLG's 7-triple sets on a small model) are truncated rather than indexing past it."""
    if getattr(config, "is_encoder_decoder", False):
        window = getattr(config, "max_position_embeddings", cell.train.max_source_tokens)
        return cell.train.model_copy(
            update={"max_source_tokens": min(cell.train.max_source_tokens, window)}
        )
    window = getattr(config, "n_positions", None) or config.max_position_embeddings
    target = max(cell.train.max_target_tokens, cell.decode.max_new_tokens)
    budget = max(8, window - prefix_length - target)
    return cell.train.model_copy(
        update={"max_source_tokens": min(cell.train.max_source_tokens, budget)}
    )


class CellFailed(Exception):
    """A cell's failure already put in words (by `failure_reason`, on a worker)."""


def failure_reason(error: Exception) -> str:
    """A failed cell's reason in one line; out of memory comes with what to change."""
    if isinstance(error, CellFailed):
        return str(error)
    reason = f"{type(error).__name__}: {error}".splitlines()[0]
    if isinstance(error, torch.cuda.OutOfMemoryError | MemoryError):
        reason += (
            " (out of memory: lower train.batch_size and raise train.grad_accum to keep the "
            "batch, lower decode.batch_size or decode.num_beams, or use a smaller model)"
        )
    return reason


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@cache
def collect_provenance() -> dict[str, Any]:
    """Package versions, git sha and hardware of the process that runs cells (once per
    process: a worker reports its own machine)."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "versions": {"python": platform.python_version(), **versions},
        "git_sha": _git_sha(),
        "hardware": {
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpu_model": _cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_build": torch.__version__,
            "cuda_build": torch.version.cuda,
        },
    }


def _cpu_model() -> str | None:
    """The CPU's model name (Linux `/proc/cpuinfo`, else what `platform` knows): kernels, and so
    float sums, differ between CPUs."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_sha() -> str | None:
    try:
        run = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout.strip() or None
