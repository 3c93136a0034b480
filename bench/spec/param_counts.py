"""`python -m bench params` without torch: the built-in methods' counts on the built-in models,
computed by `bench.engine.params` and shipped as `param_counts.json` (a test recomputes it).

A row is used only while its method's default settings are still the ones it was counted with;
the command has the engine count any other (a plugin's method, changed defaults) on the meta
device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.mini.config import MINI_LMS
from bench.spec.model_specs import RANDOM_PREFIX
from bench.spec.registry import METHODS

TABLE = Path(__file__).with_name("param_counts.json")
MODELS = ("mini", "mini-tiny", "gpt2", "gpt2-medium", "gpt2-large", "bart-base", "bart-large")


def model_spec(model: str) -> str:
    """The spec `params --model` counts: the mini LMs as they are, a published size on random
    weights (the same shapes)."""
    name = model.removeprefix(RANDOM_PREFIX)
    if name not in MODELS:
        raise UserError(f"unknown model {model!r} for params; valid: {', '.join(MODELS)}")
    return name if name in MINI_LMS else RANDOM_PREFIX + name


def defaults(method: str) -> dict[str, Any]:
    """A method's default settings as counted, without validating them (PEFT's validation
    imports torch)."""
    return METHODS.get(method).Settings.model_construct().model_dump(mode="json")


def shipped_table(model: str) -> tuple[dict[str, Any], list[str]]:
    """`model`'s table with the shipped rows that still hold (registry order), and the methods
    left for the engine to count (`bench.engine.params.parameter_table(name, methods)`)."""
    name = model_spec(model).removeprefix(RANDOM_PREFIX)
    shipped = json.loads(TABLE.read_text()).get(name, {"base": None, "methods": []})
    held = [r for r in shipped["methods"] if r["method"] in METHODS]
    rows = {
        r["method"]: r
        for r in held
        if r["trained"] is None or r["settings"] == defaults(r["method"])
    }
    stale = [m for m in METHODS.names() if m not in rows]
    return {"model": model, "base": shipped["base"], "methods": list(rows.values())}, stale


def with_rows(table: dict[str, Any], counted: dict[str, Any]) -> dict[str, Any]:
    """`table` completed by the engine's `counted` rows, in the registry's order."""
    rows = {r["method"]: r for r in [*table["methods"], *counted["methods"]]}
    methods = [rows[m] for m in METHODS.names()]
    return {**table, "base": counted["base"], "methods": methods}
