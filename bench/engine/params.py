"""Parameter accounting from configs alone: every method, default settings, on the meta device.

`python -m bench params --model gpt2-medium` builds the base and each method's modules without
allocating weights (any size in seconds: importing torch and 49 builds). The built-in methods'
rows on the built-in models ship as `bench.spec.param_counts`' table, which
`python -m bench.engine.params` writes from here and a test checks against here, so that the
command answers without torch. Trained counts what the optimizer updates;
stored counts what must be kept after training (a prefix-tuned model keeps its activations, not
its MLP; an ensemble keeps the checkpoints it mixes). A method that cannot adapt the model says
why instead of a count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from transformers import PretrainedConfig, PreTrainedTokenizerBase

from bench.engine.adapted import AdaptedLM, BuildContext, build_method, count
from bench.engine.loading import meta_of, planning_config
from bench.errors import UserError
from bench.spec.method_entry import Method
from bench.spec.param_counts import MODELS, TABLE, model_spec
from bench.spec.registry import METHODS
from bench.spec.settings import MethodSettings


def meta_build(
    config: PretrainedConfig,
    method: type[Method],
    settings: MethodSettings,
    finalize: bool = True,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> tuple[AdaptedLM, int, dict[str, AdaptedLM]]:
    """A meta-device model of `method` on a base of `config` (finalized, unless not
    `finalize`: as it trains), the parameters it trains, its dependencies; `tokenizer` for the
    settings that read text (a prefix initialized from words)."""
    dependencies = {
        role: meta_build(
            config, METHODS.get(name), METHODS.get(name).Settings(**entry.settings), True, tokenizer
        )[0]
        for role, (name, entry) in method.dependencies(settings).items()
    }
    context = BuildContext(tokenizer, dependencies)
    with torch.device("meta"):
        model = build_method(method, meta_of(config), settings, context)
        trained = count(model.trainable_parameters())
        if finalize:
            model.finalize()
    return model, trained, dependencies


def _row(config: PretrainedConfig, name: str, base: int) -> dict[str, Any]:
    method = METHODS.get(name)
    try:
        settings = method.Settings()
    except ValidationError:  # e.g. `peft`: its presets are its defaults
        fields = method.Settings.model_fields.items()
        required = ", ".join(field for field, info in fields if info.is_required())
        note = f"no default settings (give {required}; its presets have them)"
        return {"method": name, "settings": {}, "trained": None, "stored": None, "note": note}
    row: dict[str, Any] = {"method": name, "settings": settings.model_dump(mode="json")}
    try:
        model, trained, dependencies = meta_build(config, method, settings)
    except UserError as error:
        return {**row, "trained": None, "stored": None, "note": str(error)}
    stored = count(model.stored_state())
    note = None
    if method.keeps_dependencies:
        stored += sum(count(d.stored_state()) for d in dependencies.values())
        note = f"decodes with the stored {' and '.join(dependencies)} cells (trained there)"
    return {
        **row,
        "derived": model.derived_settings(),
        "trained": trained,
        "stored": stored,
        "trained_pct": 100 * trained / base,
        "stored_pct": 100 * stored / base,
        "note": note,
    }


def parameter_table(model: str, methods: list[str] | None = None) -> dict[str, Any]:
    """Every registered method's row (or those of `methods`) on `model` (one of `MODELS`)."""
    config = planning_config(model_spec(model))[0]
    base = count(list(meta_of(config).parameters()))
    names = METHODS.names() if methods is None else methods
    return {"model": model, "base": base, "methods": [_row(config, n, base) for n in names]}


def write_table(path: Path = TABLE) -> None:
    """The built-in methods' rows on every model of `MODELS`, as `bench.spec.param_counts`
    reads them (plugins' methods are not registered here)."""
    tables = {model: parameter_table(model) for model in MODELS}
    path.write_text(json.dumps(tables, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    write_table()
    print(f"wrote {TABLE}")
