"""`python -m bench score`: a predictions file scored against a task's references, with the
task's metric suite, exactly as the runner scores a cell (`bench.metrics.suites.score_suite`).
Without `--split`, a file of a full test set (the WebNLG challenge's format) is scored on every
eval split the task cuts from it (`Task.eval_split_rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.metrics import MetricUnavailable
from bench.metrics.suites import SUITES, score_stats, score_suite
from bench.spec.registry import TASKS
from bench.spec.task import Example, Task


def read_predictions(path: Path) -> list[str]:
    """One output per line (UTF-8; `\\n` or `\\r\\n` line ends; a final newline is optional)."""
    if not path.is_file():
        what = "not a regular file" if path.exists() else "no such file"
        raise UserError(f"--predictions {path}: {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"--predictions {path} is not UTF-8 ({error.reason}): save it as UTF-8"
        ) from None
    if not text:
        return []
    lines = text.removesuffix("\n").split("\n")
    return [line.removesuffix("\r") for line in lines]


def score_file(
    task_name: str, split: str | None, data_dir: Path | None, predictions: Path
) -> dict[str, Any]:
    """The JSON-ready result. With `split`: task, split, number of inputs and every metric's
    score. Without: the file is one output per input of the split its line count fits, usually
    the full test set, and `splits` holds `n` and the metrics of every eval split cut from it."""
    task = TASKS.get(task_name)()
    if split is not None:
        return _score_split(task, split, data_dir, predictions)
    hypotheses = read_predictions(predictions)
    load = cache(lambda name: task.load(name, data_dir))  # each split read once
    source, slices = _slices_for(task, len(hypotheses), data_dir, load, predictions)
    references = [ex.references for ex in load(source)]
    suite = SUITES.get(task.suite)
    stats = suite.stats(hypotheses, references)  # once: each split scores a subset of its rows
    splits = {}
    for name, rows in slices.items():
        subset = {
            m: s if isinstance(s, MetricUnavailable) else s[list(rows)] for m, s in stats.items()
        }
        scores = score_stats(suite, subset)
        splits[name] = {"n": len(rows), "metrics": {m: s.as_dict() for m, s in scores.items()}}
    return {"task": task_name, "splits": splits}


def _score_split(
    task: Task, split: str, data_dir: Path | None, predictions: Path
) -> dict[str, Any]:
    task.split(split)  # an unknown split fails here, naming the valid ones
    examples = task.load(split, data_dir)
    hypotheses = read_predictions(predictions)
    if len(hypotheses) != len(examples):
        raise UserError(
            f"{predictions} has {len(hypotheses)} lines but {task.name} {split} has "
            f"{len(examples)} inputs: write one output per input, in the task's input order"
        )
    scores = score_suite(task.suite, hypotheses, [ex.references for ex in examples])
    return {
        "task": task.name,
        "split": split,
        "n": len(examples),
        "metrics": {name: score.as_dict() for name, score in scores.items()},
    }


def _slices_for(
    task: Task,
    lines: int,
    data_dir: Path | None,
    load: Callable[[str], list[Example]],
    predictions: Path,
) -> tuple[str, dict[str, tuple[int, ...]]]:
    """The split a file of `lines` outputs is for, and each eval split's rows in it: a full
    split's size scores every split cut from it; an eval split's own size scores it alone."""
    layout = task.eval_split_rows(data_dir)
    slices = {
        full: {s: r.rows for s, r in layout.items() if r.full == full}
        for full in dict.fromkeys(r.full for r in layout.values())
    }
    sizes = {full: len(load(full)) for full in slices}
    sizes |= {s: len(r.rows) for s, r in layout.items() if s not in slices}
    fits = [name for name, size in sizes.items() if size == lines and size]
    if len(fits) > 1:
        raise UserError(
            f"{predictions} has {lines} lines, the size of {task.name} {' and '.join(fits)}: "
            "pass --split to say which"
        )
    if not fits:
        raise _count_error(task.name, lines, predictions, sizes, slices)
    (source,) = fits
    return source, slices.get(source, {source: tuple(range(lines))})


def _count_error(
    task: str,
    lines: int,
    predictions: Path,
    sizes: dict[str, int],
    slices: dict[str, dict[str, tuple[int, ...]]],
) -> UserError:
    """The line counts the task takes, each with the splits a file of that many lines scores."""
    fix = "write one output per input, in the task's input order"
    if len(sizes) == 1:
        ((split, size),) = sizes.items()
        return UserError(
            f"{predictions} has {lines} lines but {task} {split} has {size} inputs: {fix}"
        )
    counts = [f"{size} ({', '.join(slices.get(name, [name]))})" for name, size in sizes.items()]
    expected = f"{', '.join(counts[:-1])} or {counts[-1]}"
    return UserError(
        f"{predictions} has {lines} lines but {task} takes {expected} inputs: {fix}, or "
        "pass --split"
    )
