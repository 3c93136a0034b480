"""The mini LMs' recipes, their shipped weights, and their checkpoint ids.

Each mini LM ships inside the package (`bench/mini/weights/<name>/`, a few MB), pretrained by
`bench.mini.lm` from its recipe here on one CPU thread, with a manifest beside the weights that
holds the recipe's hash and the weights' digest. A checkpoint id names the weights themselves
(`mini@<digest>`), so two machines' "same" mini results come from the same bytes; a recipe that
no longer matches its shipped weights is refused until they are rebuilt
(`python -m bench mini-lm build NAME`).

Torch-free, so that validating a grid computes a cell's checkpoint id without loading anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.errors import UserError
from bench.mini import world


@dataclass(frozen=True)
class MiniLMConfig:
    n_layer: int
    n_embd: int
    n_head: int
    vocab_size: int
    entities_per_domain: int  # corpus size: documents per domain
    steps: int
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 1e-3
    infobox_share: float = 0.6  # documents that start with an infobox: they teach copying
    n_positions: int = 256
    seed: int = 0

    def recipe(self) -> dict[str, object]:
        """Everything pretraining reads: the config and the version of the world's corpus."""
        return {**asdict(self), "world": world.WORLD_VERSION}

    def recipe_hash(self) -> str:
        payload = json.dumps(self.recipe(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


MINI_LMS: dict[str, MiniLMConfig] = {
    # The default: about 1.1M parameters, pretrained in about 11 minutes on one CPU thread.
    "mini": MiniLMConfig(
        n_layer=4,
        n_embd=128,
        n_head=4,
        vocab_size=2048,
        entities_per_domain=1500,
        steps=1400,
        lr=3e-3,
        infobox_share=0.9,
    ),
    # For tests and smoke runs: seconds to build, still a real pretrained LM.
    "mini-tiny": MiniLMConfig(
        n_layer=2,
        n_embd=64,
        n_head=2,
        vocab_size=1024,
        entities_per_domain=150,
        steps=150,
        seq_len=96,
    ),
}


WEIGHTS = Path(__file__).resolve().parent / "weights"
MANIFEST = "pretraining.json"


def shipped_dir(name: str) -> Path:
    return WEIGHTS / name


def manifest(name: str) -> dict[str, object]:
    """The shipped weights' manifest, checked against the recipe: weights pretrained from
    another recipe never pass as this one's."""
    path = shipped_dir(name) / MANIFEST
    if not path.is_file():
        raise UserError(
            f"the {name} LM's weights are missing from the package ({path.parent}); reinstall "
            f"bench, or rebuild them: python -m bench mini-lm build {name}"
        )
    shipped = json.loads(path.read_text(encoding="utf-8"))
    if shipped["recipe_hash"] != MINI_LMS[name].recipe_hash():
        raise UserError(
            f"the {name} LM's shipped weights were pretrained from another recipe than "
            f"bench.mini.config's; rebuild them: python -m bench mini-lm build {name}"
        )
    return shipped


def checkpoint_id(name: str) -> str:
    """`name@<first 12 hex digits of the weights' digest>`: the id names the bytes a cell used."""
    return f"{name}@{str(manifest(name)['weights_sha256'])[:12]}"
