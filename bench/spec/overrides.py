"""Command-line changes to a grid (`--set KEY=VALUE`, `--seeds`), applied to its YAML before it
is validated, so they are checked like the file and end up in the cells' resolved configs
(and so in their ids).

A key is a dotted path into the grid: `train.lr`, `decode.num_beams`, `model`, or
`methods.NAME.settings.length` / `methods.NAME.train.lr`, where NAME is a method's name or label
(every entry it names) or its index in `methods`. A VALUE is read as YAML (3, 1e-4, true, [1, 2]).
An unknown key is one line with the nearest name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from bench.errors import UserError, did_you_mean
from bench.spec.registry import METHODS
from bench.spec.settings import DecodeConfig, GridSpec, TrainConfig
from bench.spec.strict_yaml import load_yaml

SECTIONS: dict[str, type[BaseModel]] = {"train": TrainConfig, "decode": DecodeConfig}


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0,1,2` -> [0, 1, 2]."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(
            f"--seeds {text!r}: write whole numbers separated by commas, e.g. 0,1,2"
        ) from None
    return seeds


def apply_overrides(raw: dict[str, Any], assignments: Sequence[str]) -> None:
    """Apply each `KEY=VALUE` to the grid's YAML mapping `raw`, in order."""
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        where = f"--set {assignment!r}"
        if not sep or not key or not text.strip():
            raise UserError(f"{where}: write KEY=VALUE, e.g. train.lr=1e-4 or decode.num_beams=5")
        value = load_yaml(text, where)
        path = key.split(".")
        if path[0] == "methods":
            _set_method(raw, path[1:], value, where)
            continue
        fields = [f for f in GridSpec.model_fields if f not in ("tasks", "methods", "claims")]
        _check(path[0], fields, where, "a grid")
        if path[0] in SECTIONS:
            if len(path) != 2:
                raise UserError(f"{where}: write {path[0]}.KEY=VALUE")
            _check(path[1], list(SECTIONS[path[0]].model_fields), where, path[0])
            section = raw.setdefault(path[0], {})
            if not isinstance(section, dict):
                raise UserError(f"{where}: the grid's {path[0]} is not a mapping")
            section[path[1]] = value
        elif len(path) == 1:
            raw[path[0]] = value
        else:
            raise UserError(f"{where}: {path[0]} has no parts; write {path[0]}=VALUE")


def _set_method(raw: dict[str, Any], path: list[str], value: Any, where: str) -> None:
    if len(path) < 3 or path[1] not in ("settings", "train"):
        raise UserError(
            f"{where}: write methods.NAME.settings.KEY=VALUE or methods.NAME.train.KEY=VALUE"
        )
    ref, section, keys = path[0], path[1], path[2:]
    methods = raw.get("methods")
    entries = [e for e in methods if isinstance(e, dict)] if isinstance(methods, list) else []
    chosen = (
        [entries[int(ref)]]
        if ref.isdigit() and int(ref) < len(entries)
        else [e for e in entries if ref in (e.get("name"), e.get("label"))]
    )
    if not chosen:
        names = (str(e.get(k)) for e in entries for k in ("name", "label") if e.get(k))
        known = list(dict.fromkeys(names))
        raise UserError(
            f"{where}: the grid has no method {ref!r}; {did_you_mean(ref, known)}"
            f"its methods: {', '.join(known)}"
        )
    for entry in chosen:
        if section == "train":
            _check(keys[0], list(TrainConfig.model_fields), where, "train")
        elif entry.get("name") in METHODS:
            fields = METHODS.get(entry["name"]).Settings.model_fields
            _check(keys[0], list(fields), where, f"{entry['name']}'s settings")
        target = entry.setdefault(section, {})
        for key in keys[:-1]:
            if not isinstance(target, dict):
                break
            target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise UserError(f"{where}: {'.'.join(path[:-1])} is not a mapping")
        target[keys[-1]] = value


def _check(key: str, valid: list[str], where: str, what: str) -> None:
    if key not in valid:
        raise UserError(
            f"{where}: {what} has no {key!r}; {did_you_mean(key, valid)}valid: {', '.join(valid)}"
        )
