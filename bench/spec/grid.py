"""Grids: YAML presets or files, validated into a `GridSpec`, expanded into `Cell`s.

A cell is one (task, method + settings, model, seed, n_train) with its training and decoding
settings fully resolved (`bench.spec.settings`). A hybrid method (ensemble, cocktail) depends on
cells of other methods: expansion puts those cells before it (the same cell once, however many
hybrids reuse it). Nothing here imports torch: a driver, a listing or a report loads grids cheaply.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bench.errors import UserError, did_you_mean
from bench.spec.claims import Claim
from bench.spec.model_specs import checkpoint_id
from bench.spec.overrides import apply_overrides
from bench.spec.registry import METHODS, TASKS, load_plugins
from bench.spec.settings import Cell, GridSpec, MethodEntry, TaskEntry, TrainConfig
from bench.spec.strict_yaml import check_text, load_yaml

PRESETS_DIR = Path(str(resources.files("bench.grids")))
DEFAULT_GRID = "mini"
MAX_GRID_BYTES = 2**20  # the largest preset is 2.4 KB


def load_grid(
    ref: str | None,
    model_override: str | None = None,
    plugins: tuple[str, ...] = (),
    overrides: tuple[str, ...] = (),
    seeds: list[int] | None = None,
) -> tuple[GridSpec, str]:
    """A preset name or a YAML path -> (validated spec, its YAML text).

    `plugins` (from `--plugin`) and the grid's own `plugins:` are imported before its names are
    checked, so that the methods and tasks they register are known. `overrides` (`--set
    KEY=VALUE`) and `seeds` (`--seeds`) change the YAML before it is validated
    (`bench.spec.overrides`); the text returned is then the changed grid's."""
    path = preset_path(ref or DEFAULT_GRID)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (UTF-8); a grid is a YAML file") from None
    raw = load_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a grid is a YAML mapping with keys name, tasks, methods, ...")
    raw.setdefault("name", path.stem)
    if model_override:
        check_text(model_override, "--model")
        raw["model"] = model_override
    if overrides:  # --set names a plugin method's settings: register it first
        named = raw.get("plugins") if isinstance(raw.get("plugins"), list) else []
        load_plugins([*plugins, *(p for p in named if isinstance(p, str))])
    apply_overrides(raw, overrides)
    if seeds is not None:
        raw["seeds"] = seeds
    if overrides or seeds is not None:
        seeds_text = [] if seeds is None else [f"--seeds {','.join(map(str, seeds))}"]
        changes = " ".join([*(f"--set {a}" for a in overrides), *seeds_text])
        text = f"# {path.name} with {changes}\n" + yaml.safe_dump(raw, sort_keys=False)
    try:
        spec = GridSpec.model_validate(raw)
    except ValidationError as error:
        raise UserError(f"{path}: {first_error(error)}") from None
    load_plugins([*plugins, *spec.plugins])
    validate_names(spec, str(path))
    return spec, text


def preset_path(ref: str) -> Path:
    candidate = Path(ref)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.exists():
            raise UserError(f"grid file {ref} does not exist")
        if not candidate.is_file():
            raise UserError(f"grid file {ref} is not a regular file (a folder, pipe or device)")
        if candidate.stat().st_size > MAX_GRID_BYTES:
            raise UserError(f"grid file {ref} is over {MAX_GRID_BYTES // 2**20} MiB; not a grid")
        return candidate
    preset = PRESETS_DIR / f"{ref}.yaml"
    if not preset.is_file():
        raise UserError(
            f"unknown grid {ref!r}; {did_you_mean(ref, preset_names())}presets: "
            f"{', '.join(preset_names())}, "
            "or pass a path to a YAML file"
        )
    return preset


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def first_error(error: ValidationError, prefix: str = "") -> str:
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
        checkpoint_id(spec.model)
    except UserError as error:
        raise UserError(f"{source}: model: {error}") from None
    for i, claim in enumerate(spec.claims):
        _validate_claim(spec, claim, f"{source}: claims.{i}")


def method_labels(spec: GridSpec) -> dict[str, list[MethodEntry]]:
    """Each label the grid's method entries show in reports -> its entries."""
    labels: dict[str, list[MethodEntry]] = {}
    for entry in spec.methods:
        labels.setdefault(entry.label or _label(entry.name, entry.settings), []).append(entry)
    return labels


def claim_label(spec: GridSpec, ref: str) -> str:
    """The label a claim's method reference names: a label, or the name of the method of
    exactly one label."""
    labels = method_labels(spec)
    if ref in labels:
        return ref
    named = [label for label, entries in labels.items() if entries[0].name == ref]
    if len(named) == 1:
        return named[0]
    if named:
        raise UserError(f"method {ref!r} has several labels here ({', '.join(named)}); name one")
    known = list(dict.fromkeys([*labels, *(entries[0].name for entries in labels.values())]))
    raise UserError(
        f"no method {ref!r} in this grid; {did_you_mean(ref, known)}its labels: {', '.join(labels)}"
    )


def _validate_claim(spec: GridSpec, claim: Claim, where: str) -> None:
    """A claim names methods, a task, splits and a training size the grid has."""
    tasks = {entry.name: entry for entry in spec.tasks}
    try:
        if claim.task not in tasks:
            raise UserError(f"task {claim.task!r} is not in this grid ({', '.join(tasks)})")
        entry = tasks[claim.task]
        task = TASKS.get(claim.task)()
        for split in claim.splits:
            task.split(split)
            if entry.splits and split not in entry.splits:
                raise UserError(
                    f"split {split!r} is not evaluated here ({', '.join(entry.splits)})"
                )
        if claim.n_train is not None and claim.n_train not in entry.n_train:
            raise UserError(f"n_train {claim.n_train} is not a training size of {claim.task}")
        for ref in (claim.method, *claim.than):
            entries = method_labels(spec)[claim_label(spec, ref)]
            if not any(not m.tasks or claim.task in m.tasks for m in entries):
                raise UserError(f"method {ref!r} does not run on {claim.task}")
    except UserError as error:
        raise UserError(f"{where}: {error}") from None


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
    except ValidationError as error:
        raise UserError(f"{source}: {first_error(error, where)}") from None
    try:
        TrainConfig.model_validate({**spec.train.model_dump(), **train})
    except ValidationError as error:
        raise UserError(f"{source}: {first_error(error, where + '.train')}") from None
    for role, (dependency, entry) in method.dependencies(resolved).items():
        _validate_method(spec, dependency, entry.settings, entry.train, f"{where}.{role}", source)


MAX_CELLS = 100_000  # far past any real grid; a typo in seeds or samples is caught in ms


def expand(spec: GridSpec) -> list[Cell]:
    """The grid's cells in run order: each (task, method, size, sample, seed), a hybrid's
    dependencies first, each distinct resolved config once; a grid counted past `MAX_CELLS` is
    refused before any cell is built."""
    count = count_cells(spec)
    if count > MAX_CELLS:
        raise UserError(
            f"grid {spec.name!r} would make {count:,} cells (tasks x methods x sizes x samples x "
            f"seeds), more than the {MAX_CELLS:,} bench runs in one grid; fewer seeds or samples"
        )
    checkpoint = checkpoint_id(spec.model)
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


def count_cells(spec: GridSpec) -> int:
    """How many cells `expand` would build at most (before identical ones merge), by arithmetic."""
    total = 0
    for task_entry in spec.tasks:
        subsets = sum(task_entry.samples if n else 1 for n in task_entry.n_train)
        for entry in spec.methods:
            if entry.tasks is None or task_entry.name in entry.tasks:
                total += _cells_per_run(entry.name, entry.settings) * subsets * len(spec.seeds)
    return total


def _cells_per_run(name: str, settings: dict[str, Any]) -> int:
    """A method's cell plus those of its dependencies (a hybrid's parts), recursively."""
    method = METHODS.get(name)
    parts = method.dependencies(method.Settings.model_validate(settings)).values()
    return 1 + sum(_cells_per_run(dependency, entry.settings) for dependency, entry in parts)


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
    for role, (dependency, entry) in method.dependencies(resolved).items():
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


MIN_SOURCE_TOKENS = 8


def check_lengths(cells: list[Cell], positions: int, encoder_decoder: bool) -> None:
    """Decoding and target lengths must fit the model's window beside the method's prefix and a
    source of at least MIN_SOURCE_TOKENS (sources are cut to fit, targets never)."""
    for cell in cells:
        prefix = METHODS.get(cell.method).Settings.model_validate(cell.settings).positions_used()
        longest = max(cell.decode.max_new_tokens, cell.train.max_target_tokens)
        room = positions - prefix - longest - (0 if encoder_decoder else MIN_SOURCE_TOKENS)
        if room < 0:
            raise UserError(
                f"{cell.describe()}: decode.max_new_tokens {cell.decode.max_new_tokens} / "
                f"train.max_target_tokens {cell.train.max_target_tokens} and a prefix of "
                f"{prefix} do not fit the model's {positions} positions"
                + ("" if encoder_decoder else f" with a source of {MIN_SOURCE_TOKENS} tokens")
                + f"; lower them to at most {longest + room}"
            )
