"""The mini LMs' configs and their checkpoint ids: what a grid needs to name a mini model.

Torch-free, so that validating a grid computes a cell's checkpoint id without loading anything;
`bench.mini.lm` pretrains the model a config describes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

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

    def checkpoint_id(self, name: str) -> str:
        payload = json.dumps({**asdict(self), "world": world.WORLD_VERSION}, sort_keys=True)
        return f"{name}@{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


MINI_LMS: dict[str, MiniLMConfig] = {
    # The default: about 1.1M parameters, pretrained for about five minutes on 2 CPU cores.
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


def cache_root() -> Path:
    """Where built mini LMs (and other caches) live: $BENCH_CACHE, or ~/.cache/bench."""
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))
