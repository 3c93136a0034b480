"""Reading official data files, where every defect becomes one line naming the file and the fix.

Task modules parse formats (CSV, XML, JSON, JSON lines); this module owns the failure modes they
share: a missing file, a truncated or malformed one, a missing field. Each raises `UserError`
with the path (and the line or entry when known), so `bench` can exit 2 instead of tracing back.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.errors import UserError

DATA_DIR_ENV = "BENCH_DATA_DIR"


def default_data_dir() -> Path:
    """Where `bench data download` puts files and where tasks look when no --data-dir is given."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    from bench.cache import cache_root

    return cache_root() / "data"


def regular(path: Path) -> Path:
    """`path`, if it is a regular file (through links): a folder, a FIFO (whose reader waits for
    a writer forever) or a device (/dev/zero never ends) in a data file's place is the user's."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror}); check the data dir") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe or a device)"
        raise UserError(f"{path} is {kind}, where a data file belongs; put the official file there")
    return path


def file_sha256(path: Path) -> str:
    """A data file's sha256, read in 1 MiB blocks: recorded with every cell, checked on download."""
    regular(path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_root(data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else default_data_dir()


def require(data_dir: Path | None, relative: str, task: str) -> Path:
    """The file `relative` under the data dir; absence is a user error that says how to get it."""
    path = data_root(data_dir) / relative
    if not path.exists():
        raise UserError(
            f"task {task!r}: {path} not found; pass --data-dir DIR holding the official files "
            f"(DIR/{relative}), or run `python -m bench data download {task}`"
        )
    return path


def read_csv(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV with a header that has at least `columns`."""
    try:
        with regular(path).open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, strict=True)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(
                    f"{path}: header lacks column(s) {', '.join(missing)} (has "
                    f"{', '.join(reader.fieldnames or []) or 'no header'}); is this the "
                    "official file?"
                )
            for row in reader:
                if any(row.get(c) is None for c in columns):
                    raise UserError(
                        f"{path}, line {reader.line_num}: row has fewer fields than the header; "
                        "the file looks truncated: download it again"
                    )
                yield reader.line_num, row
    except csv.Error as error:
        raise UserError(
            f"{path}, after line {reader.line_num}: malformed CSV ({error}); the file looks "
            "truncated or damaged: download it again"
        ) from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 ({error.reason}); download it again") from None


def parse_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(regular(path)).getroot()
    except ET.ParseError as error:
        line, column = error.position
        raise UserError(
            f"{path}, line {line}, column {column}: malformed XML ({error.msg}); the file looks "
            "truncated or damaged: download it again"
        ) from None


def read_json(path: Path) -> Any:
    try:
        with regular(path).open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise UserError(
            f"{path}, line {error.lineno}: malformed JSON ({error.msg}); the file looks truncated "
            "or damaged: download it again"
        ) from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with regular(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(
                    f"{path}, line {number}: malformed JSON line ({error.msg}); fix or "
                    "regenerate the file"
                ) from None
            if not isinstance(record, dict):
                raise UserError(f"{path}, line {number}: expected a JSON object per line")
            yield number, record


def field(record: dict[str, Any], name: str, where: str) -> Any:
    """`record[name]`, or a user error naming the entry that lacks it."""
    if name not in record or record[name] is None:
        raise UserError(f"{where}: missing field {name!r}; is this the official format?")
    return record[name]


def natural_key(text: str) -> list[int | str]:
    """Sort key that orders Id2 before Id10, as the official WebNLG reference files do."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
