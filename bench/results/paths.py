"""The guard on every folder bench writes or deletes in: it stays inside the results directory.

A results directory may itself be a link (results -> /scratch/results is how clusters work), but
what bench replaces and removes inside it (`reports/`, a grid's report, `cells/`) must not lead
elsewhere through a symlink: a report swap would delete what the link points at. Paths are checked
before anything is written; a failure is the user's to fix, in one line.
"""

from __future__ import annotations

import errno
from pathlib import Path

from bench.errors import UserError


def check_path_text(path: Path, option: str) -> None:
    """A path given on the command line that is not valid UTF-8 (bytes the shell passed through)
    cannot go into the store or a report: refused by name."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise UserError(f"{option} {shown!r} is not valid UTF-8; pass a path in UTF-8") from None


def check_reachable(path: Path, option: str) -> None:
    """`path` either exists or can be created: not a dangling link, a link loop, too long."""
    try:
        path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise UserError(
                f"{option} {path} is a symlink to {path.readlink()}, which does not exist; "
                "create its target or pass another path"
            ) from None
    except NotADirectoryError:
        return  # a file on the way: `check_results_dir` names it
    except OSError as error:
        why = {errno.ELOOP: "a symlink loop", errno.ENAMETOOLONG: "a path too long"}.get(
            error.errno or 0, error.strerror
        )
        raise UserError(f"{option} {_short(path)}: {why}; pass another path") from None


def inside(results_dir: Path, relative: str, kind: str = "folder") -> Path:
    """`results_dir / relative`, refused when it (or a link on the way) leads out of the results
    directory, or exists as the wrong kind (`folder` or `file`)."""
    path = results_dir / relative
    root, target = results_dir.resolve(), path.resolve()
    if target != root and root not in target.parents:
        raise UserError(
            f"{path} leads out of the results directory (a symlink to {target}); bench replaces "
            "and deletes files there, so remove the link or pass another --results-dir"
        )
    right = path.is_dir() if kind == "folder" else path.is_file()
    if path.exists() and not right:
        raise UserError(
            f"{path} is not a {kind}, where bench keeps its {relative}; move it away or pass "
            "another --results-dir"
        )
    return path


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-30:]} ({len(text)} characters)"
