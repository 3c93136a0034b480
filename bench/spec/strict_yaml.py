"""Grid YAML, read strictly: what PyYAML accepts silently (a duplicate key, NaN, a lone surrogate,
an integer SQLite cannot store) or dies on (nesting past Python's recursion limit, an alias bomb)
is refused here as one line naming where it is.

Bounds are checked on PyYAML's event stream before anything is built (depth and size cost no
recursion there), then on the built value with an iterative walk that stops at the size bound, so
aliases that multiply a few lines into billions of values are refused in milliseconds.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from bench.errors import UserError

MAX_DEPTH = 40  # a grid nests 5-6 levels; a hybrid of hybrids a few more
MAX_VALUES = 100_000  # scalars, lists and mappings, aliases counted each time they are used
INT_RANGE = (-(2**63), 2**63 - 1)  # SQLite's INTEGER


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (YAML says keys are unique;
    PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} on line {line}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(text: str, where: str) -> Any:
    """The YAML document in `text`, checked; `where` names the file in messages."""
    _check_events(text, where)
    try:
        value = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        raise UserError(f"{where}: not valid YAML ({_first_line(error)})") from None
    _check_values(value, where)
    return value


def _check_events(text: str, where: str) -> None:
    depth = count = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            count += 1
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1
                    raise UserError(
                        f"{where}, line {line}: nested more than {MAX_DEPTH} levels deep; a grid "
                        "is a few levels of mappings and lists"
                    )
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            if count > MAX_VALUES:
                raise UserError(f"{where}: more than {MAX_VALUES:,} YAML values; not a grid")
    except yaml.YAMLError as error:
        raise UserError(f"{where}: not valid YAML ({_first_line(error)})") from None


def _check_values(value: Any, where: str) -> None:
    """Every value, iteratively with a budget: finite numbers, storable integers, valid text."""
    stack: list[tuple[Any, str]] = [(value, "")]
    visited = 0
    while stack:
        item, path = stack.pop()
        visited += 1
        if visited > MAX_VALUES:
            raise UserError(
                f"{where}: expands to more than {MAX_VALUES:,} values (YAML aliases used many "
                "times over?); write the grid out"
            )
        at = f"{where}: {path or 'the document'}"
        if isinstance(item, dict):
            for key, child in item.items():
                check_text(str(key), at)
                stack.append((child, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list):
            stack += [(child, f"{path}.{i}") for i, child in enumerate(item)]
        elif isinstance(item, bool):
            continue
        elif isinstance(item, float) and not math.isfinite(item):
            raise UserError(f"{at}: {item} is not a finite number")
        elif isinstance(item, int) and not INT_RANGE[0] <= item <= INT_RANGE[1]:
            raise UserError(f"{at}: {item} is out of range (at most {INT_RANGE[1]:,})")
        elif isinstance(item, str):
            check_text(item, at)


def check_text(text: str, at: str) -> None:
    """Text that UTF-8 can encode (what the store and the reports write); `at` names where."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"{at}: {text.encode('utf-8', 'backslashreplace').decode()!r} holds a lone surrogate "
            "(not valid Unicode text); write the characters themselves"
        ) from None


def _first_line(error: yaml.YAMLError) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
