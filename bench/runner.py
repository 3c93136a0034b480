"""The runner: turns cells into stored results, skipping the ones already finished.

Per cell: load data -> build model and method -> train -> generate on every eval split (each
distinct input once) -> score -> write predictions and the method's stored weights -> one store
transaction. A failing cell is recorded with its reason and the grid goes on; Ctrl-C marks the
running cell interrupted and stops, leaving every finished cell in the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bench.adapted import AdaptedLM, BuildContext, count
from bench.data import DEV, TRAIN, Example, low_data_subset, training_pairs
from bench.generation import generate
from bench.grid import Cell
from bench.metrics.suites import score_suite
from bench.models import load_model
from bench.progress import Progress
from bench.registry import METHODS, TASKS
from bench.store import ParamCounts, Score, Store, cell_dir, predictions_file
from bench.training import TrainConfig, TrainResult, train

STORED = "stored.safetensors"
PACKAGES = ("torch", "transformers", "tokenizers", "adapters", "peft", "sacrebleu", "rouge-score")


@dataclass
class RunSummary:
    done: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def check_data(cells: list[Cell], data_dir: Path | None) -> None:
    """Load every split the cells need, so missing or malformed data stops a run (as a
    `UserError`) before anything is written; the task modules cache what they parse."""
    needed: dict[str, dict[str, None]] = {}  # task -> splits, in first-needed order
    for cell in cells:
        needed.setdefault(cell.task, dict.fromkeys((TRAIN, DEV))).update(dict.fromkeys(cell.splits))
    for name, splits in needed.items():
        task = TASKS.get(name)()
        for split in splits:
            task.load(split, data_dir)


def run_cells(
    cells: list[Cell],
    store: Store,
    results_dir: Path,
    data_dir: Path | None,
    force: bool = False,
    progress: Progress | None = None,
) -> RunSummary:
    summary = RunSummary()
    provenance = collect_provenance()
    todo = [c for c in cells if force or store.status(c.id) != "done"]
    summary.skipped = [c for c in cells if c not in todo]
    grid_bar = (
        progress.add_task("grid", total=len(cells), completed=len(summary.skipped), info="")
        if progress
        else None
    )
    for cell in todo:
        if progress is not None:
            progress.update(grid_bar, info=cell.describe())
        store.start_cell(cell.id, cell.model_dump(mode="json"))
        started = time.time()
        try:
            run_cell(cell, store, results_dir, data_dir, provenance, progress)
            summary.done.append(cell)
            _say(progress, f"done   {cell.describe()} ({time.time() - started:.0f}s)")
        except KeyboardInterrupt:
            store.fail_cell(cell.id, "interrupted", "interrupted by the user", provenance)
            raise
        except Exception as error:  # a failing cell must not stop the grid
            reason = f"{type(error).__name__}: {error}"
            store.fail_cell(cell.id, "failed", reason + "\n" + traceback.format_exc(), provenance)
            summary.failed.append((cell, reason))
            _say(progress, f"failed {cell.describe()}: {reason}")
        if progress is not None:
            progress.advance(grid_bar)
    return summary


def _say(progress: Progress | None, line: str) -> None:
    """A line per finished cell: above the bars on a terminal, the only output in a CI log."""
    if progress is not None:
        progress.console.print(line, highlight=False)


def run_cell(
    cell: Cell,
    store: Store,
    results_dir: Path,
    data_dir: Path | None,
    provenance: dict[str, Any],
    progress: Progress | None,
) -> None:
    timings: dict[str, float] = {}
    clock = time.time()
    seed_everything(cell.seed)
    task = TASKS.get(cell.task)()
    # Low-data subsets depend on the sample index, not the training seed: the paper trains each
    # of its sampled datasets with several seeds.
    train_examples = low_data_subset(task.load(TRAIN, data_dir), cell.n_train, cell.sample)
    dev_examples = task.load(DEV, data_dir)
    if cell.n_train is not None:  # the paper's low-data dev set: 30% of the training size
        dev_examples = low_data_subset(dev_examples, max(1, int(0.3 * cell.n_train)), cell.sample)
    eval_examples: dict[str, list[Example]] = {
        split: task.load(split, data_dir)[: cell.eval_limit] for split in cell.splits
    }
    run_device = device()
    loaded = load_model(cell.model, cell.seed, progress)
    method = METHODS.get(cell.method)()
    total = count(list(loaded.model.parameters()))
    dependencies = load_dependencies(cell, store, results_dir, run_device)
    model: AdaptedLM = method.build(
        loaded.model,
        method.Settings.model_validate(cell.settings),
        BuildContext(loaded.tokenizer, dependencies),
    )
    model.to(run_device)
    trained = count(model.trainable_parameters())
    train_config = fit_to_positions(cell, loaded.model.config, getattr(model, "prefix_length", 0))
    timings["setup"] = time.time() - clock

    result = TrainResult(steps=0, seconds=0.0)  # an ensemble only decodes its dependencies
    if trained:
        result = train(
            model,
            loaded.tokenizer,
            training_pairs(train_examples),
            training_pairs(dev_examples),
            train_config,
            cell.seed,
            run_device,
            progress,
        )
    timings["train"] = result.seconds
    model.finalize()

    clock = time.time()
    unique_sources = list(dict.fromkeys(ex.source for exs in eval_examples.values() for ex in exs))
    outputs = dict(
        zip(
            unique_sources,
            generate(
                model,
                loaded.tokenizer,
                unique_sources,
                cell.decode,
                train_config.max_source_tokens,
                run_device,
                progress,
            ),
            strict=True,
        )
    )
    timings["generate"] = time.time() - clock

    clock = time.time()
    scores = []
    for split, examples in eval_examples.items():
        hypotheses = [outputs[ex.source] for ex in examples]
        values = score_suite(task.suite, hypotheses, [ex.references for ex in examples])
        ood = task.split(split).ood
        for name, score in values.items():
            if score.value is None:  # reported, never stored as 0
                _say(progress, f"{name} unavailable on {cell.task} {split}: {score.unavailable}")
            else:
                scores.append(
                    Score(split, ood, name, score.value, len(examples), score.low, score.high)
                )
    timings["score"] = time.time() - clock

    out = cell_dir(results_dir, cell.id)
    stored = {k: v.contiguous().cpu() for k, v in model.stored_state().items()}
    stored_bytes = write_cell_files(out, cell, eval_examples, outputs, stored)
    stored_count = count(stored)
    if method.keeps_dependencies:  # it decodes with their checkpoints, so they count as stored
        for role, dependency in dependencies.items():
            stored_count += count(dependency.stored_state())
            stored_bytes += (cell_dir(results_dir, cell.depends[role]) / STORED).stat().st_size
    data_hashes = {str(p): sha256(p) for p in task.data_files(data_dir)}
    store.finish_cell(
        cell.id,
        scores,
        ParamCounts(trained=trained, stored=stored_count, total=total, stored_bytes=stored_bytes),
        {"train": result.losses, "dev": result.dev_losses},
        timings,
        {
            **provenance,
            "checkpoint": loaded.checkpoint,
            "data_sha256": data_hashes,
            "data_recipe": task.recipe(),
            "train_examples": len(train_examples),
            "train_steps": result.steps,
            "derived_settings": model.derived_settings(),
            "depends": cell.depends,
        },
    )


def load_dependencies(
    cell: Cell, store: Store, results_dir: Path, run_device: torch.device
) -> dict[str, AdaptedLM]:
    """The stored cells a hybrid reuses (run before it by the grid), rebuilt from their files."""
    models = {}
    for role, cell_id in cell.depends.items():
        status = store.status(cell_id)
        if status != "done":
            state = status or "not run"
            raise RuntimeError(f"the {role} cell {cell_id} this cell reuses is {state}")
        folder = cell_dir(results_dir, cell_id)
        models[role] = load_stored_model(
            Cell.model_validate_json((folder / "cell.json").read_text()), folder
        ).to(run_device)
    return models


def load_stored_model(cell: Cell, folder: Path) -> AdaptedLM:
    """A finished cell's model: its method on a fresh base, with the cell's stored weights."""
    loaded = load_model(cell.model, cell.seed)
    method = METHODS.get(cell.method)()
    model = method.build(
        loaded.model, method.Settings.model_validate(cell.settings), BuildContext(loaded.tokenizer)
    )
    model.load_stored(load_file(folder / STORED))
    model.eval()
    return model


def write_cell_files(
    out: Path,
    cell: Cell,
    eval_examples: dict[str, list[Example]],
    outputs: dict[str, str],
    stored: dict[str, torch.Tensor],
) -> int:
    """Predictions as JSONL per split and the stored weights; returns the checkpoint's bytes.

    Written to a temporary directory and renamed, so a cell's files are whole or absent.
    """
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "cell.json").write_text(json.dumps(cell.model_dump(mode="json"), indent=2))
    for split, examples in eval_examples.items():
        path = predictions_file(staging, split)
        path.parent.mkdir(exist_ok=True)
        with path.open("w") as f:
            for ex in examples:
                f.write(
                    json.dumps(
                        {
                            "source": ex.source,
                            "prediction": outputs[ex.source],
                            "references": list(ex.references),
                        }
                    )
                    + "\n"
                )
    save_file(stored, staging / STORED)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    return (out / STORED).stat().st_size


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def collect_provenance() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        sha = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.TimeoutExpired):
        sha = None
    return {
        "versions": {"python": platform.python_version(), **versions},
        "git_sha": sha,
        "hardware": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }
