"""A finished cell's files checked against the sizes and sha256 digests stored with its rows, and
the folder swap that replaces a finished cell without a moment where neither result is whole.

Files go missing or change after their cell was stored (a disk, a cleanup script, a hand), and
the rows would then claim a result that is not there; so every file's size and sha256 are
recorded in the same transaction as the rows, a runner checks a finished cell before it skips
it, and the reading commands list the broken ones.

What a check hashes (`FULL_DIGEST_BYTES`): sha256 runs at 1.3-1.7 GB/s on a 2-core AMD EPYC with
SHA extensions from the page cache and about 0.6 GB/s from its disk (44 cells, 1.9 GB: 3.4 s),
so hashing a grid of fine-tuned GPT-2 Medium cells (1.4 GB of weights each) would add seconds
per cell to every start, more on a network file system. A check therefore always compares every
file's presence and size, and the digest of every file up to 64 MiB (cell.json, predictions,
the weights of prefix-tuning and other light methods: 0.7 s for those 44 cells); larger weights
are compared by digest only where it decides which folder stays (`settle_folder`). Cells stored
before digests were recorded are checked for their files only.

The swap (`swap_in`, undone by `settle_folder` after a kill at any moment): the new files are
written and flushed to `<cell>.partial`; `<cell>` is renamed to `<cell>.old`, `<cell>.partial` to
`<cell>`; then the rows (with the new digests) commit; then `<cell>.old` is removed. Until the
commit the rows describe `<cell>.old` (or no folder), after it `<cell>`: settling keeps `<cell>`
when the rows record its exact digests, or are not done (no folder counts then), else puts
`<cell>.old` back.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import NamedTuple

FULL_DIGEST_BYTES = 64 * 2**20  # files up to this size are hashed at every check


class FileDigest(NamedTuple):
    """One file of a cell's folder as it was written: its path in the folder, size, sha256."""

    path: str
    size: int
    sha256: str


def digest(path: str, data: bytes) -> FileDigest:
    return FileDigest(path, len(data), hashlib.sha256(data).hexdigest())


def staging_dir(folder: Path) -> Path:
    """Where a cell's new files are written before they are swapped in."""
    return folder.with_name(folder.name + ".partial")


def aside_dir(folder: Path) -> Path:
    """Where a cell's previous folder waits while its replacement's rows commit."""
    return folder.with_name(folder.name + ".old")


def folder_problems(folder: Path, recorded: list[FileDigest], full: bool = False) -> list[str]:
    """What differs between `folder` and the files recorded for it (empty: nothing); digests of
    files over `FULL_DIGEST_BYTES` are compared only when `full`."""
    if not folder.is_dir():
        return [f"its folder {folder} is missing"]
    problems = []
    for expected in recorded:
        path = folder / expected.path
        try:
            size = path.stat().st_size if path.is_file() else None
            if size is None:
                problems.append(f"{expected.path} is missing")
            elif size != expected.size:
                problems.append(f"{expected.path} has {size:,} bytes, {expected.size:,} recorded")
            elif (full or size <= FULL_DIGEST_BYTES) and _sha256(path) != expected.sha256:
                problems.append(f"{expected.path} differs from its recorded sha256")
        except OSError as error:
            problems.append(f"{expected.path} cannot be read ({error.strerror})")
    return problems


def missing_files(folder: Path, names: list[str]) -> list[str]:
    """For a cell stored before digests were recorded: which of its files are absent."""
    if not folder.is_dir():
        return [f"its folder {folder} is missing"]
    return [f"{name} is missing" for name in names if not (folder / name).is_file()]


def swap_in(staged: Path, folder: Path) -> None:
    """Move the staged files to `folder`, the previous folder (if any) to `aside_dir(folder)`."""
    if folder.exists():
        os.replace(folder, aside_dir(folder))
    os.replace(staged, folder)
    sync_dir(folder.parent)


def settle_folder(folder: Path, recorded: list[FileDigest] | None) -> None:
    """After a writer stopped at any moment, leave the folder its cell's rows describe and no
    leftovers. `recorded`: the digests of a done cell's rows (empty: stored before digests);
    None when the cell is not done, so no folder of it counts. Only one process may settle a
    cell at a time: the one holding its claim, or a runner that holds it for this."""
    staged, aside = staging_dir(folder), aside_dir(folder)
    shutil.rmtree(staged, ignore_errors=True)
    if not aside.exists():
        return
    if recorded is None or (recorded and not folder_problems(folder, recorded, full=True)):
        shutil.rmtree(aside, ignore_errors=True)  # the rows name `folder`, or no folder
        return
    if folder.exists():  # the replacement whose rows never committed
        os.replace(folder, staged)
    os.replace(aside, folder)
    sync_dir(folder.parent)
    shutil.rmtree(staged, ignore_errors=True)


def sync_dir(folder: Path) -> None:
    """Make a folder's entries (a new file, a rename) durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
