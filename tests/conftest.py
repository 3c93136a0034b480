"""Test setup: offline, a private cache, and a small grid that trains in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.runs import bench_process, finished

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_GRID = """
name: tiny
description: a grid that trains in seconds, for tests
model: mini-tiny
seeds: [0]
tasks:
  - name: mini-e2e
    n_train: [40]
    eval_limit: 12
  - name: mini-webnlg
    n_train: [40]
    eval_limit: 8
    splits: [test_seen, test_unseen]
methods:
  - name: finetune
    train: {lr: 1.0e-3}
  - name: prefix
    settings: {length: 4, mlp_hidden: 32}
    train: {lr: 5.0e-3}
train: {epochs: 1, batch_size: 8}
decode: {num_beams: 2, max_new_tokens: 24}
"""

# The tiny grid with cells long enough (about a minute each on 2 cores: 40 epochs, each scored on
# 256 dev pairs) that a signal sent once a cell runs always finds one running.
SLOW_GRID = TINY_GRID.replace("epochs: 1", "epochs: 40, dev_examples: 256")

# Hybrids (Hewitt et al., 2021) on their dependencies: an ensemble of a prefix and an FT cell, and a
# cocktail whose prefix teacher is the grid's own prefix entry.
HYBRID_GRID = """
name: hybrids
model: mini-tiny
tasks:
  - {name: mini-e2e, n_train: [16], eval_limit: 4}
methods:
  - name: ensemble
    settings:
      lam: 0.5
      prefix: {settings: {length: 4, mlp_hidden: 16}, train: {lr: 5.0e-3}}
      finetune: {train: {lr: 1.0e-3}}
  - name: cocktail
    settings:
      beta: 0.5
      teacher: {settings: {length: 4, mlp_hidden: 16}, train: {lr: 5.0e-3}}
    train: {lr: 1.0e-3}
  - name: prefix
    settings: {length: 4, mlp_hidden: 16}
    train: {lr: 5.0e-3}
train: {epochs: 1, batch_size: 8}
decode: {num_beams: 2, max_new_tokens: 12}
"""


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session has its own cache (METEOR's parsed tables, downloads), unless
    BENCH_CACHE is set."""
    if "BENCH_CACHE" not in os.environ:
        os.environ["BENCH_CACHE"] = str(tmp_path_factory.mktemp("bench-cache"))
    return Path(os.environ["BENCH_CACHE"])


@pytest.fixture
def tiny_grid(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_GRID)
    return path


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny grid run once, uninterrupted."""
    folder = tmp_path_factory.mktemp("reference")
    grid = folder / "tiny.yaml"
    grid.write_text(TINY_GRID)
    code, err = finished(bench_process(grid, folder / "r"))
    assert code == 0, err
    return grid, folder / "r"
