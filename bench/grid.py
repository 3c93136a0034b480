"""Grid specs (validated YAML) and their expansion into cells.

A cell is one (task, method + settings, model, seed, n_train) with its training and decoding
settings fully resolved. Its identity is a hash of that resolved config: a rerun skips finished
cells, and any changed setting (or a new version of a task's data or of the mini LM) is a new cell.
A hybrid method (ensemble, cocktail) depends on cells of other methods: expansion puts those
cells before it (the same cell once, however many hybrids reuse it).
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
    samples: int = Field(
        1, ge=1, description="low-data: training subsets drawn per size (the paper: 5)"
    )
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
    tasks: list[str] | None = Field(
        None, description="only on these tasks of the grid (per-task hyperparameters)"
    )


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
    sample: int = Field(0, description="which seeded training subset of size n_train")
    train: TrainConfig
    decode: DecodeConfig
    depends: dict[str, str] = Field(default_factory=dict, description="role -> cell id reused")

    @cached_property
    def id(self) -> str:
        # `depends` follows from the settings (they name the dependencies' settings).
        identity = self.model_dump(mode="json", exclude={"label", "depends"})
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> str:
        size = "" if self.n_train is None else f" n={self.n_train} sample {self.sample}"
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
    tasks = [entry.name for entry in spec.tasks]
    for i, entry in enumerate(spec.methods):
        _validate_method(spec, entry.name, entry.settings, entry.train, f"methods.{i}", source)
        for name in set(entry.tasks or ()) - set(tasks):
            raise UserError(
                f"{source}: methods.{i}.tasks: {name!r} is not a task of this grid "
                f"({', '.join(tasks)})"
            )
    try:
        models.checkpoint_id(spec.model)
    except UserError as error:
        raise UserError(f"{source}: model: {error}") from None


def _validate_method(
    spec: GridSpec,
    name: str,
    settings: dict[str, Any],
    train: dict[str, Any],
    where: str,
    source: str,
) -> None:
    try:
        method = METHODS.get(name)
    except UserError as error:
        raise UserError(f"{source}: {where}: {error}") from None
    try:
        resolved = method.Settings.model_validate(settings)
        TrainConfig.model_validate({**spec.train.model_dump(), **train})
    except ValidationError as error:
        raise UserError(f"{source}: {_first_error(error, where)}") from None
    for role, (dependency, entry) in method().dependencies(resolved).items():
        _validate_method(spec, dependency, entry.settings, entry.train, f"{where}.{role}", source)


def expand(spec: GridSpec) -> list[Cell]:
    checkpoint = models.checkpoint_id(spec.model)
    cells = []
    for task_entry in spec.tasks:
        task = TASKS.get(task_entry.name)()
        splits = tuple(task_entry.splits or (s.name for s in task.eval_splits))
        for method_entry in spec.methods:
            if method_entry.tasks is not None and task.name not in method_entry.tasks:
                continue
            for n_train, sample in _subsets(task_entry):
                for seed in spec.seeds:
                    cells += _method_cells(
                        spec,
                        dict(
                            task=task.name,
                            task_version=task.version,
                            splits=splits,
                            eval_limit=task_entry.eval_limit,
                            model=spec.model,
                            checkpoint=checkpoint,
                            seed=seed,
                            n_train=n_train,
                            sample=sample,
                            decode=spec.decode,
                        ),
                        method_entry.name,
                        method_entry.settings,
                        method_entry.train,
                        method_entry.label,
                    )
    unique: dict[str, Cell] = {}
    for cell in cells:  # identical entries (same resolved config) run once
        unique.setdefault(cell.id, cell)
    return list(unique.values())


def _subsets(entry: TaskEntry) -> list[tuple[int | None, int]]:
    """(size, sample index) pairs: `samples` draws per low-data size, one for the full set."""
    return [(n, sample) for n in entry.n_train for sample in range(entry.samples if n else 1)]


def _method_cells(
    spec: GridSpec,
    shared: dict[str, Any],
    name: str,
    settings: dict[str, Any],
    train: dict[str, Any],
    label: str | None,
) -> list[Cell]:
    """The cell of one method on the `shared` task, model, seed and subset, after the cells it
    depends on (a hybrid reuses them)."""
    method = METHODS.get(name)
    resolved = method.Settings.model_validate(settings)
    cells: list[Cell] = []
    depends: dict[str, str] = {}
    for role, (dependency, entry) in method().dependencies(resolved).items():
        cells += _method_cells(spec, shared, dependency, entry.settings, entry.train, None)
        depends[role] = cells[-1].id
    cells.append(
        Cell(
            **shared,
            method=name,
            label=label or _label(name, settings),
            settings=resolved.model_dump(),
            train=TrainConfig.model_validate({**spec.train.model_dump(), **train}),
            depends=depends,
        )
    )
    return cells


def _label(method: str, settings: dict[str, Any]) -> str:
    """`prefix(length=5)`: the method plus the settings the grid set explicitly (not those of a
    hybrid's dependencies, which have cells and labels of their own)."""
    shown = {k: v for k, v in settings.items() if not isinstance(v, dict)}
    if not shown:
        return method
    return f"{method}({', '.join(f'{k}={v}' for k, v in sorted(shown.items()))})"
