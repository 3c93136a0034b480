"""Grid specs (validated YAML) and their expansion into cells.

A cell is one (task, method + settings, model, seed, n_train) with its training and decoding
settings fully resolved. Its identity is a hash of that resolved config: a rerun skips finished
cells, and any changed setting (or a new version of a task's data or of the mini LM) is a new cell.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench import models
from bench.errors import UserError
from bench.generation import DecodeConfig
from bench.registry import METHODS, TASKS
from bench.training import TrainConfig

PRESETS_DIR = Path(__file__).resolve().parent.parent / "grids"
DEFAULT_GRID = "mini"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskEntry(_Strict):
    name: str
    splits: list[str] | None = Field(None, description="eval splits; all of the task's if unset")
    n_train: list[int | None] = Field([None], description="training-set sizes; null = all")
    eval_limit: int | None = Field(None, ge=1, description="score the first N inputs per split")

    @field_validator("n_train")
    @classmethod
    def _positive(cls, sizes: list[int | None]) -> list[int | None]:
        if any(n is not None and n < 1 for n in sizes):
            raise ValueError("training-set sizes must be positive (or null for all)")
        return sizes


class MethodEntry(_Strict):
    name: str
    label: str | None = Field(None, description="display name in reports")
    settings: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of grid `train`")


class GridSpec(_Strict):
    name: str
    description: str = ""
    model: str = "mini"
    seeds: list[int] = Field([0], min_length=1)
    tasks: list[TaskEntry] = Field(min_length=1)
    methods: list[MethodEntry] = Field(min_length=1)
    train: TrainConfig = TrainConfig()
    decode: DecodeConfig = DecodeConfig()


class Cell(_Strict):
    """Everything that determines a cell's results, and nothing else (not the grid's name)."""

    task: str
    task_version: str
    splits: tuple[str, ...]
    eval_limit: int | None
    method: str
    label: str
    settings: dict[str, Any]
    model: str
    checkpoint: str
    seed: int
    n_train: int | None
    train: TrainConfig
    decode: DecodeConfig

    @cached_property
    def id(self) -> str:
        identity = self.model_dump(mode="json", exclude={"label"})
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> str:
        size = "" if self.n_train is None else f" n={self.n_train}"
        return f"{self.task} / {self.label}{size} / seed {self.seed}"


def load_grid(ref: str | None, model_override: str | None = None) -> tuple[GridSpec, str]:
    """A preset name or a YAML path -> (validated spec, its YAML text)."""
    path = preset_path(ref or DEFAULT_GRID)
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a grid is a YAML mapping with keys name, tasks, methods, ...")
    raw.setdefault("name", path.stem)
    if model_override:
        raw["model"] = model_override
    try:
        spec = GridSpec.model_validate(raw)
    except ValidationError as error:
        raise UserError(f"{path}: {_first_error(error)}") from None
    validate_names(spec, str(path))
    return spec, text


def preset_path(ref: str) -> Path:
    candidate = Path(ref)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise UserError(f"grid file {ref} does not exist")
        return candidate
    preset = PRESETS_DIR / f"{ref}.yaml"
    if not preset.is_file():
        raise UserError(
            f"unknown grid {ref!r}; presets: {', '.join(preset_names())}, "
            "or pass a path to a YAML file"
        )
    return preset


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _first_error(error: ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    parts = [*(prefix.split(".") if prefix else ()), *first["loc"]]
    where = ".".join(str(part) for part in parts)
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def validate_names(spec: GridSpec, source: str) -> None:
    """Unknown tasks, splits, methods, settings or models fail before anything runs."""
    for i, entry in enumerate(spec.tasks):
        try:
            task = TASKS.get(entry.name)()
            for split in entry.splits or ():
                task.split(split)
        except UserError as error:
            raise UserError(f"{source}: tasks.{i}: {error}") from None
    for i, entry in enumerate(spec.methods):
        try:
            method = METHODS.get(entry.name)
        except UserError as error:
            raise UserError(f"{source}: methods.{i}: {error}") from None
        try:
            method.Settings.model_validate(entry.settings)
            TrainConfig.model_validate({**spec.train.model_dump(), **entry.train})
        except ValidationError as error:
            raise UserError(f"{source}: {_first_error(error, f'methods.{i}')}") from None
    try:
        models.checkpoint_id(spec.model)
    except UserError as error:
        raise UserError(f"{source}: model: {error}") from None


def expand(spec: GridSpec) -> list[Cell]:
    checkpoint = models.checkpoint_id(spec.model)
    cells = []
    for task_entry in spec.tasks:
        task = TASKS.get(task_entry.name)()
        splits = tuple(task_entry.splits or (s.name for s in task.eval_splits))
        for method_entry in spec.methods:
            method = METHODS.get(method_entry.name)
            settings = method.Settings.model_validate(method_entry.settings).model_dump()
            train = TrainConfig.model_validate({**spec.train.model_dump(), **method_entry.train})
            for n_train in task_entry.n_train:
                for seed in spec.seeds:
                    cells.append(
                        Cell(
                            task=task.name,
                            task_version=task.version,
                            splits=splits,
                            eval_limit=task_entry.eval_limit,
                            method=method_entry.name,
                            label=method_entry.label
                            or _label(method_entry.name, method_entry.settings),
                            settings=settings,
                            model=spec.model,
                            checkpoint=checkpoint,
                            seed=seed,
                            n_train=n_train,
                            train=train,
                            decode=spec.decode,
                        )
                    )
    unique: dict[str, Cell] = {}
    for cell in cells:  # identical entries (same resolved config) run once
        unique.setdefault(cell.id, cell)
    return list(unique.values())


def _label(method: str, settings: dict[str, Any]) -> str:
    """`prefix(length=5)`: the method plus the settings the grid set explicitly."""
    if not settings:
        return method
    return f"{method}({', '.join(f'{k}={v}' for k, v in sorted(settings.items()))})"
