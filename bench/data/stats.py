"""`python -m bench data stats`: inputs and references per task and split, from the task loaders.

A split whose files are absent (or unreadable) is reported with the reason, never as zeros, so
a table of counts can be trusted to describe data that was actually read. Tasks that select
splits by a rule (XSum's topic splits) add each split's `pool`: the official split it draws from,
how many ids that holds, how many have the metadata the rule reads, the pool, and the size drawn.
Those need only the metadata (the split file and URL lists), so they show even without the texts.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UserError
from bench.spec.registry import TASKS


def split_stats(task_name: str, data_dir: Path | None) -> dict[str, dict[str, object]]:
    task = TASKS.get(task_name)()
    stats: dict[str, dict[str, object]] = {}
    for split in task.data_splits():
        try:
            examples = task.load(split, data_dir)
        except UserError as error:
            stats[split] = {"available": False, "reason": str(error)}
            continue
        stats[split] = {
            "inputs": len(examples),
            "references": sum(len(ex.references) for ex in examples),
        }
    try:
        pools = task.pool_sizes(data_dir)
    except UserError as error:
        pools = {split: {"available": False, "reason": str(error)} for split in stats}
    for split, pool in pools.items():
        stats[split]["pool"] = pool
    return stats


def all_stats(data_dir: Path | None, tasks: list[str] | None = None) -> dict[str, dict]:
    return {name: split_stats(name, data_dir) for name in tasks or TASKS.names()}
