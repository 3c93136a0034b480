"""`python -m bench score`: a predictions file scored against a task's references, with the
task's metric suite, exactly as the runner scores a cell (`bench.metrics.suites.score_suite`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.metrics.suites import score_suite
from bench.registry import TASKS


def read_predictions(path: Path) -> list[str]:
    """One output per line (UTF-8; `\\n` or `\\r\\n` line ends; a final newline is optional)."""
    if not path.is_file():
        raise UserError(f"--predictions {path}: no such file")
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
    """The JSON-ready result: task, split, number of inputs and every metric's score."""
    task = TASKS.get(task_name)()
    split = split or task.eval_splits[0].name
    task.split(split)  # an unknown split fails here, naming the valid ones
    examples = task.load(split, data_dir)
    hypotheses = read_predictions(predictions)
    if len(hypotheses) != len(examples):
        raise UserError(
            f"{predictions} has {len(hypotheses)} lines but {task_name} {split} has "
            f"{len(examples)} inputs: write one output per input, in the task's input order"
        )
    scores = score_suite(task.suite, hypotheses, [ex.references for ex in examples])
    return {
        "task": task_name,
        "split": split,
        "n": len(examples),
        "metrics": {name: score.as_dict() for name, score in scores.items()},
    }
