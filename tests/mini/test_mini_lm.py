"""The shipped mini LMs: checkpoint ids that name their weights, files checked against their
manifest, a recipe that no longer matches refused, and the recipe reproducing the shipped
weights on one thread (`bench mini-lm check`; the default LM's rebuild is slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.mini import config
from bench.mini.config import MANIFEST, MINI_LMS, manifest, shipped_dir
from bench.mini.lm import LEARNED, build, checkpoint_dir, weights_digest
from bench.spec.model_specs import checkpoint_id
from tests.runs import ROOT, bench


@pytest.mark.parametrize("name", sorted(MINI_LMS))
def test_the_checkpoint_id_names_the_shipped_weights(name: str) -> None:
    folder = checkpoint_dir(name)
    digest = weights_digest(folder)
    assert manifest(name)["weights_sha256"] == digest
    assert checkpoint_id(name) == f"{name}@{digest[:12]}"
    assert manifest(name)["threads"] == 1


def _copy_of_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(config.WEIGHTS, tmp_path / "weights")
    monkeypatch.setattr(config, "WEIGHTS", tmp_path / "weights")
    return tmp_path / "weights" / "mini-tiny"


def test_damaged_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _copy_of_shipped(tmp_path, monkeypatch)
    weights = bytearray((folder / LEARNED[0]).read_bytes())
    weights[-1] ^= 1
    (folder / LEARNED[0]).write_bytes(bytes(weights))
    with pytest.raises(UserError, match=r"do not match their manifest.*mini-lm build mini-tiny"):
        checkpoint_dir("mini-tiny")


def test_weights_of_another_recipe_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MINI_LMS, "mini-tiny", replace(MINI_LMS["mini-tiny"], steps=151))
    with pytest.raises(UserError, match=r"another recipe.*mini-lm build mini-tiny"):
        checkpoint_id("mini-tiny")
    folder = _copy_of_shipped(tmp_path, monkeypatch)
    (folder / MANIFEST).unlink()
    with pytest.raises(UserError, match="missing from the package"):
        checkpoint_id("mini-tiny")


def test_build_replaces_a_folder_whole_with_the_shipped_bytes(tmp_path: Path) -> None:
    out = tmp_path / "mini-tiny"
    out.mkdir()
    (out / "stale.bin").write_bytes(b"from an earlier build")
    build("mini-tiny", out)
    assert not (out / "stale.bin").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in shipped_dir("mini-tiny").iterdir()
    )
    rebuilt = json.loads((out / MANIFEST).read_text())
    assert rebuilt["weights_sha256"] == manifest("mini-tiny")["weights_sha256"]
    assert [p.name for p in tmp_path.iterdir()] == ["mini-tiny"]  # no leftovers beside it


def test_cli_check_reproduces_the_tiny_lm_and_refuses_unknown_names() -> None:
    checked = bench("mini-lm", "check", "mini-tiny")
    assert checked.returncode == 0, checked.stderr
    assert "mini-tiny: reproduced exactly" in checked.stderr
    unknown = bench("mini-lm", "check", "mini-tine")
    assert unknown.returncode == 2
    assert "unknown mini LM 'mini-tine'; did you mean 'mini-tiny'?" in unknown.stderr


@pytest.mark.slow
def test_the_recipe_reproduces_the_shipped_default_lm_on_one_thread() -> None:
    """About 11 minutes on this project's 2-core x86-64 machines."""
    checked = subprocess.run(
        [sys.executable, "-m", "bench", "mini-lm", "check", "mini"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        timeout=3600,
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "mini: reproduced exactly" in checked.stderr
