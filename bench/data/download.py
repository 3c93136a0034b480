"""`python -m bench data download TASK`: the official public files, verified against pinned hashes.

`sources.json` (beside this module) pins, per task, each file's path in a data dir, its URL at a
fixed commit and its sha256 (from copies whose git blobs were checked against the official
repositories). A file with no pinned hash (one too large for the copies this project could check) is
still fetched, and its hash is printed and written to `SHA256SUMS` so a later download can be
compared by hand. `BENCH_DATA_MIRROR` replaces `https://raw.githubusercontent.com/` in every URL (a
local mirror or a `file://` directory in tests). Files are written to a temporary name and renamed
once verified, so a failed download never leaves a half-written file where a loader would read it.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bench.data.files import file_sha256
from bench.errors import UserError

GITHUB_RAW = "https://raw.githubusercontent.com/"
MIRROR_ENV = "BENCH_DATA_MIRROR"


@dataclass(frozen=True)
class Source:
    path: str
    url: str
    sha256: str | None
    note: str = ""


def sources(task: str) -> list[Source]:
    table = json.loads(resources.files("bench.data").joinpath("sources.json").read_text())
    key = task if task in table else task.split("-")[0]
    if key not in table:
        raise UserError(
            f"no download recipe for task {task!r}; downloadable: {', '.join(sorted(table))}"
        )
    mirror = os.environ.get(MIRROR_ENV)
    return [
        Source(
            entry["path"],
            entry["url"].replace(GITHUB_RAW, mirror.rstrip("/") + "/") if mirror else entry["url"],
            entry["sha256"],
            entry.get("note", ""),
        )
        for entry in table[key]
    ]


def download(task: str, to: Path, say: Callable[[str], None] = print) -> list[Path]:
    """Fetch every file of `task` into `to`; verified files already there are kept."""
    fetched = []
    for source in sources(task):
        target = to / source.path
        if target.exists() and source.sha256 and file_sha256(target) == source.sha256:
            say(f"ok       {source.path} (already there, sha256 verified)")
            fetched.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            with (
                urllib.request.urlopen(source.url, timeout=60) as response,
                partial.open("wb") as out,
            ):
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError, ValueError) as error:
            partial.unlink(missing_ok=True)
            reason = getattr(error, "reason", error)
            raise UserError(
                f"could not fetch {source.url} ({reason}); check the network (or set "
                f"{MIRROR_ENV} to a mirror), or copy the official files into {to} by hand"
            ) from None
        digest = file_sha256(partial)
        if source.sha256 and digest != source.sha256:
            partial.unlink()
            raise UserError(
                f"{source.url}: sha256 {digest} does not match the pinned {source.sha256}; the "
                "file changed upstream or the download was damaged: nothing was written, retry "
                "or report it"
            )
        partial.replace(target)
        if source.sha256:
            say(f"verified {source.path}" + (f" ({source.note})" if source.note else ""))
        else:
            with (to / "SHA256SUMS").open("a") as sums:
                sums.write(f"{digest}  {source.path}\n")
            say(f"fetched  {source.path}: no pinned hash; sha256 {digest} (in SHA256SUMS)")
        fetched.append(target)
    return fetched
