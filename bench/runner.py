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
from safetensors.torch import save_file

from bench.adapted import AdaptedLM, count
from bench.data import DEV, TRAIN, Example, low_data_subset, training_pairs
from bench.generation import generate
from bench.grid import Cell
from bench.metrics import score_all
from bench.models import load_model
from bench.progress import Progress
from bench.registry import METHODS, TASKS
from bench.store import ParamCounts, Score, Store
from bench.training import train

PACKAGES = ("torch", "transformers", "tokenizers", "adapters", "peft", "sacrebleu", "rouge-score")


@dataclass
class RunSummary:
    done: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)


def cell_dir(results_dir: Path, cell_id: str) -> Path:
    return results_dir / "cells" / cell_id


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    train_examples = low_data_subset(task.load(TRAIN, data_dir), cell.n_train, cell.seed)
    dev_examples = task.load(DEV, data_dir)
    if cell.n_train is not None:  # the paper's low-data dev set: 30% of the training size
        dev_examples = low_data_subset(dev_examples, max(1, int(0.3 * cell.n_train)), cell.seed)
    eval_examples: dict[str, list[Example]] = {
        split: task.load(split, data_dir)[: cell.eval_limit] for split in cell.splits
    }
    run_device = device()
    loaded = load_model(cell.model, cell.seed, progress)
    method = METHODS.get(cell.method)()
    model: AdaptedLM = method.build(loaded.model, method.Settings.model_validate(cell.settings))
    model.to(run_device)
    trained = count(model.trainable_parameters())
    total = count(list(loaded.model.parameters()))
    timings["setup"] = time.time() - clock

    result = train(
        model,
        loaded.tokenizer,
        training_pairs(train_examples),
        training_pairs(dev_examples),
        cell.train,
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
                cell.train.max_source_tokens,
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
        values = score_all(task.metrics, hypotheses, [ex.references for ex in examples])
        ood = task.split(split).ood
        scores += [Score(split, ood, name, value, len(examples)) for name, value in values.items()]
    timings["score"] = time.time() - clock

    out = cell_dir(results_dir, cell.id)
    stored = {k: v.contiguous().cpu() for k, v in model.stored_state().items()}
    stored_bytes = write_cell_files(out, cell, eval_examples, outputs, stored)
    data_hashes = {str(p): sha256(p) for p in task.data_files(data_dir)}
    store.finish_cell(
        cell.id,
        scores,
        ParamCounts(trained=trained, stored=count(stored), total=total, stored_bytes=stored_bytes),
        {"train": result.losses, "dev": result.dev_losses},
        timings,
        {
            **provenance,
            "checkpoint": loaded.checkpoint,
            "data_sha256": data_hashes,
            "train_examples": len(train_examples),
            "train_steps": result.steps,
        },
    )


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
    (staging / "predictions").mkdir(parents=True)
    (staging / "cell.json").write_text(json.dumps(cell.model_dump(mode="json"), indent=2))
    for split, examples in eval_examples.items():
        with (staging / "predictions" / f"{split}.jsonl").open("w") as f:
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
    save_file(stored, staging / "stored.safetensors")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    return (out / "stored.safetensors").stat().st_size


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
