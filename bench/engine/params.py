"""Parameter accounting from configs alone: every method, default settings, on the meta device.

`python -m bench params --model gpt2-medium` builds the base and each method's modules without
allocating weights, so it is instant for any size. Trained counts what the optimizer updates;
stored counts what must be kept after training (a prefix-tuned model keeps its activations, not
its MLP; an ensemble keeps the checkpoints it mixes). A method that cannot adapt the model says
why instead of a count.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import ValidationError

from bench.engine.adapted import AdaptedLM, BuildContext, build_method, count
from bench.engine.loading import meta_model
from bench.errors import UserError
from bench.spec.method_entry import Method
from bench.spec.model_specs import RANDOM_PREFIX
from bench.spec.registry import METHODS
from bench.spec.settings import MethodSettings

MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "bart-base", "bart-large")


def _build(
    spec: str, method: type[Method], settings: MethodSettings
) -> tuple[AdaptedLM, int, dict[str, AdaptedLM]]:
    """A finalized meta-device model of `method`, the parameters it trained, its dependencies."""
    dependencies = {
        role: _build(spec, METHODS.get(name), METHODS.get(name).Settings(**entry.settings))[0]
        for role, (name, entry) in method.dependencies(settings).items()
    }
    with torch.device("meta"):
        model = build_method(method, meta_model(spec), settings, BuildContext(None, dependencies))
        trained = count(model.trainable_parameters())
        model.finalize()
    return model, trained, dependencies


def _row(spec: str, name: str, base: int) -> dict[str, Any]:
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
        model, trained, dependencies = _build(spec, method, settings)
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


def parameter_table(model: str) -> dict[str, Any]:
    spec = model if model.startswith(RANDOM_PREFIX) else RANDOM_PREFIX + model
    if spec[len(RANDOM_PREFIX) :] not in MODELS:
        raise UserError(f"unknown model {model!r} for params; valid: {', '.join(MODELS)}")
    base = count(list(meta_model(spec).parameters()))
    return {
        "model": model,
        "base": base,
        "methods": [_row(spec, name, base) for name in METHODS.names()],
    }
