"""Model specs -> what they name, without loading anything.

A spec is one of:
- `mini`, `mini-tiny`: the embedded LM, pretrained on the mini world and shipped in the package
  (the default);
- `random:ARCH`: a built-in architecture (`random:gpt2-medium`, `random:bart-large`) with random
  weights, for smoke runs and parameter counts;
- anything else: a hub id or local path, loaded with transformers where the user has the weights.

Torch-free: a grid's cells carry the checkpoint id of their model, and validating a grid must
not import the engine (`bench.engine.loading` loads the model a spec names).
"""

from __future__ import annotations

from bench.errors import UserError
from bench.mini.config import MINI_LMS
from bench.mini.config import checkpoint_id as mini_checkpoint_id

RANDOM_PREFIX = "random:"

# GPT-2 family sizes as published with the checkpoints (vocab 50257, 1024 positions).
ARCHITECTURES: dict[str, dict[str, int]] = {
    "gpt2": {"n_layer": 12, "n_embd": 768, "n_head": 12},
    "gpt2-medium": {"n_layer": 24, "n_embd": 1024, "n_head": 16},
    "gpt2-large": {"n_layer": 36, "n_embd": 1280, "n_head": 20},
    "gpt2-xl": {"n_layer": 48, "n_embd": 1600, "n_head": 25},
}
# BART sizes as published with facebook/bart-base and facebook/bart-large (vocab 50265).
BART_ARCHITECTURES: dict[str, dict[str, int]] = {
    "bart-base": {"d_model": 768, "layers": 6, "heads": 12, "ffn": 3072},
    "bart-large": {"d_model": 1024, "layers": 12, "heads": 16, "ffn": 4096},
}


def random_architecture(spec: str) -> str | None:
    """The ARCH of a `random:ARCH` spec (checked), None for other specs."""
    if not spec.startswith(RANDOM_PREFIX):
        return None
    arch = spec[len(RANDOM_PREFIX) :]
    if arch not in ARCHITECTURES and arch not in BART_ARCHITECTURES:
        valid = ", ".join(sorted([*ARCHITECTURES, *BART_ARCHITECTURES]))
        raise UserError(f"unknown architecture {arch!r} in '{spec}'; valid: {valid}")
    return arch


def checkpoint_id(spec: str) -> str:
    """A stable name for what `spec` loads, without loading it; part of each cell's identity."""
    if spec in MINI_LMS:
        return mini_checkpoint_id(spec)
    random_architecture(spec)
    return spec


def window(spec: str) -> tuple[int, bool] | None:
    """(positions, is encoder-decoder) of a built-in model, without loading it; None for a hub
    id or path, whose config `bench.engine.loading.hub_window` reads."""
    if spec in MINI_LMS:
        return MINI_LMS[spec].n_positions, False
    arch = random_architecture(spec)
    if arch is None:
        return None
    return 1024, arch in BART_ARCHITECTURES  # as published for GPT-2 and BART
