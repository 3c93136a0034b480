"""A stored result is always the cell's own: whatever sits in a cell's checkpoint folder (another
seed's state copied in, garbage, an empty, truncated or partial file, a symlink out of the
results directory) is set aside, kept and said so, and the cell ends byte for byte as an
uninterrupted run; its own interrupted state is still resumed. Through the runner, on one cell
of the tiny grid, checkpointing every step (about 10 s on 2 cores)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from rich.console import Console

from bench.engine.cell import run_cell
from bench.engine.training import PIECES, Checkpointing, NotResumable
from bench.progress import make_progress
from bench.results.store import Store, cell_dir, checkpoint_dir
from bench.run.runner import run_cells
from bench.spec.grid import expand, load_grid
from bench.spec.settings import Cell
from tests.conftest import TINY_GRID
from tests.runs import predictions

STOP_AT = 2  # of the cell's 5 optimizer steps


class Interrupted(Checkpointing):
    """Saves every step, as the runner's does, and is killed after step `STOP_AT`'s save."""

    def save(self, state):
        super().save(state)
        if state["result"]["steps"] == STOP_AT:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> tuple[Cell, Cell]:
    """The tiny grid's mini-e2e fine-tuning cell, seed 0, and the same cell with seed 1."""
    grid = tmp_path_factory.mktemp("grid") / "tiny.yaml"
    grid.write_text(TINY_GRID.replace("seeds: [0]", "seeds: [0, 1]"))
    expanded = expand(load_grid(str(grid))[0])
    cell, other = (c for c in expanded if (c.task, c.method) == ("mini-e2e", "finetune"))
    return cell, other


@pytest.fixture(scope="module")
def saved(cells, tmp_path_factory) -> dict[str, Path]:
    """Real checkpoint folders, each left by a run killed after step `STOP_AT`: the cell's own
    and the seed-1 cell's."""
    folders = {}
    for name, cell in zip(("own", "other"), cells, strict=True):
        folders[name] = tmp_path_factory.mktemp("saved") / name
        with pytest.raises(KeyboardInterrupt):
            run_cell(cell, None, checkpoints=Interrupted(folders[name], every_seconds=0))
    return folders


@pytest.fixture(scope="module")
def whole(cells, tmp_path_factory) -> dict[str, str]:
    """The digests of the cell's stored files after an uninterrupted run."""
    results = tmp_path_factory.mktemp("whole")
    provenance, _ = run(cells[0], results)
    assert provenance["resumed_at_step"] is None and provenance["set_aside_checkpoint"] is None
    return stored_files(results, cells[0])


def run(cell: Cell, results: Path) -> tuple[dict, str]:
    """Run `cell` through the runner, checkpointing every step: its stored provenance and what
    the runner printed."""
    out = io.StringIO()
    progress = make_progress(Console(file=out, width=1000, color_system=None))
    store = Store(results / "bench.sqlite")
    summary = run_cells([cell], store, results, None, progress=progress, checkpoint_minutes=0)
    assert summary.done == [cell] and not summary.failed, summary.failed
    return json.loads(store.run(cell.id)["provenance"]), out.getvalue()


def stored_files(results: Path, cell: Cell) -> dict[str, str]:
    """The sha256 of every predictions file and of the stored weights, by path in the results
    directory (digests: a failure's diff of the bytes themselves takes minutes)."""
    stored = cell_dir(results, cell.id) / "stored.safetensors"
    files = {**predictions(results), str(stored.relative_to(results)): stored.read_bytes()}
    return {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}


def contents(folder: Path) -> dict[str, str]:
    """The sha256 of every file under `folder` (links followed), by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def truncated(saved: dict[str, Path]) -> bytes:
    """The first half of the cell's own saved state."""
    data = (saved["own"] / "training.pt").read_bytes()
    return data[: len(data) // 2]


def without_optimizer(saved: dict[str, Path]) -> bytes:
    """The cell's own saved state, whole but for its optimizer's."""
    state = torch.load(saved["own"] / "training.pt", weights_only=False)
    del state["optimizer"]
    out = io.BytesIO()
    torch.save(state, out)
    return out.getvalue()


# fault -> (the training.pt it leaves, the start of why it is set aside); "foreign" copies in
# the seed-1 cell's whole folder instead.
FAULTS: dict[str, tuple[Callable[[dict[str, Path]], bytes], str]] = {
    "garbage": (lambda saved: b"\x00not a checkpoint\xff" * 64, "is unreadable (UnpicklingError"),
    "empty": (lambda saved: b"", "is empty (training.pt: 0 bytes)"),
    "truncated": (truncated, "is unreadable"),
    "partial": (without_optimizer, "is partial (no optimizer)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["foreign", *FAULTS])
def test_a_checkpoint_not_the_cells_own_is_set_aside_and_the_cell_trains_afresh(
    fault, cells, saved, whole, tmp_path
):
    cell, other = cells
    folder = checkpoint_dir(tmp_path, cell.id)
    if fault == "foreign":
        shutil.copytree(saved["other"], folder)
        why = f"was saved for another cell ('{other.id}'; this run's: '{cell.id}')"
    else:
        make, why = FAULTS[fault]
        folder.mkdir(parents=True)
        (folder / "training.pt").write_bytes(make(saved))
    put_there = contents(folder)
    provenance, printed = run(cell, tmp_path)
    assert stored_files(tmp_path, cell) == whole  # byte for byte the uninterrupted run's
    moved = folder.with_name(f"{cell.id}.checkpoint.set-aside-1")
    assert contents(moved) == put_there and not folder.exists()  # kept, out of the way
    note = provenance["set_aside_checkpoint"]
    assert note["moved_to"] == str(moved) and note["why"].startswith(why), note
    assert provenance["resumed_at_step"] is None
    line = f"{cell.describe()}: its checkpoint {note['why']}: set aside as {moved}, trained from"
    assert line in printed, printed


@pytest.mark.slow
def test_the_cells_own_interrupted_checkpoint_is_resumed(cells, saved, whole, tmp_path):
    """The control: the same machinery resumes a state that is the cell's own."""
    cell, _ = cells
    shutil.copytree(saved["own"], checkpoint_dir(tmp_path, cell.id))
    provenance, printed = run(cell, tmp_path)
    assert provenance["resumed_at_step"] == STOP_AT and provenance["set_aside_checkpoint"] is None
    assert stored_files(tmp_path, cell) == whole and "set aside" not in printed


@pytest.mark.slow
@pytest.mark.parametrize("linked", ["folder", "file"])
def test_a_symlinked_checkpoint_is_never_followed_and_its_target_stays_whole(
    linked, cells, saved, whole, tmp_path
):
    """A link out of the results directory (to the cell's own valid state, even) is neither
    read nor written through: the link itself is set aside and the cell trains afresh."""
    cell, _ = cells
    outside = tmp_path / "outside"
    shutil.copytree(saved["own"], outside)
    before = contents(outside)
    results = tmp_path / "r"
    folder = checkpoint_dir(results, cell.id)
    folder.parent.mkdir(parents=True)
    if linked == "folder":
        folder.symlink_to(outside, target_is_directory=True)
    else:
        folder.mkdir()
        (folder / "training.pt").symlink_to(outside / "training.pt")
    provenance, _ = run(cell, results)
    assert contents(outside) == before and sorted(os.listdir(outside)) == ["training.pt"]
    assert stored_files(results, cell) == whole and provenance["resumed_at_step"] is None
    moved = folder.with_name(f"{cell.id}.checkpoint.set-aside-1")
    link, target = (
        (moved, outside) if linked == "folder" else (moved / "training.pt", outside / "training.pt")
    )
    assert link.is_symlink() and Path(os.readlink(link)) == target  # the link itself moved
    why = "is a symlink" if linked == "folder" else "has a symlink for training.pt"
    assert provenance["set_aside_checkpoint"]["why"] == f"{why} (not followed)"


def test_saving_never_writes_through_a_link_and_set_aside_takes_the_next_free_name(tmp_path):
    """A folder linked while the cell ran is refused, not written through; a stale link where
    the next state is written goes, its target stays; an earlier set-aside copy is kept."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "mine").write_bytes(b"keep")
    state = {**dict.fromkeys(PIECES), "result": {"steps": 1}}  # "identity": stamped by save
    linked = tmp_path / "linked.checkpoint"
    linked.symlink_to(outside, target_is_directory=True)
    with pytest.raises(RuntimeError, match="is a symlink"):
        Checkpointing(linked).save(state)
    folder = tmp_path / "c.checkpoint"
    folder.mkdir()
    (folder / "training.partial").symlink_to(outside / "mine")
    Checkpointing(folder).save(state)
    assert (outside / "mine").read_bytes() == b"keep" and (folder / "training.pt").is_file()
    (tmp_path / "c.checkpoint.set-aside-1").mkdir()
    checkpoints = Checkpointing(folder, identity={"cell": "c"})
    with pytest.raises(
        NotResumable, match=r"^was saved for another cell \(None; this run's: 'c'\)$"
    ):
        checkpoints.load()
    checkpoints.set_aside("why")
    assert checkpoints.moved == {
        "why": "why",
        "moved_to": str(tmp_path / "c.checkpoint.set-aside-2"),
    }
    assert sorted(os.listdir(tmp_path)) == [
        "c.checkpoint.set-aside-1",
        "c.checkpoint.set-aside-2",
        "linked.checkpoint",
        "outside",
    ]
