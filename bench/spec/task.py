"""What a task hands the engine: examples with references, grouped into splits.

A task module in `tasks/` subclasses `Task` and registers it; the engine never needs to know
where the data came from (the embedded mini world, official files, or the hub).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

TRAIN, DEV = "train", "dev"


@dataclass(frozen=True)
class Example:
    """One input with all of its references; `source` is already linearized for the model."""

    source: str
    references: tuple[str, ...]


SPLIT_TAGS = ("ID", "OOD", "all")  # stored as their index (the store's `ood` column)


def split_tag(code: int | bool) -> str:
    """A stored split code (0, 1, 2; older stores and bundles: false, true) as its tag."""
    return SPLIT_TAGS[int(code)]


@dataclass(frozen=True)
class EvalSplit:
    """An evaluation split; `ood` tags it out-of-distribution relative to the training data,
    `mixed` as neither: its inputs mix seen and unseen ones (WebNLG's `test`, all categories)."""

    name: str
    ood: bool
    mixed: bool = False


@dataclass(frozen=True)
class SplitRows:
    """Where an eval split's inputs sit in a full split: `rows` of `full`, in the split's order.

    One file of outputs for the full split then scores every split drawn from it, as the WebNLG
    challenge scored one file of all 1,862 test inputs on seen, unseen and all categories.
    """

    full: str
    rows: tuple[int, ...]


class Task:
    """Base class of a task: subclasses set the class attributes and implement `load`.

    `version` is part of every cell's identity: bump it when the data a task yields changes, so
    stored results of the old data are not mistaken for the new.
    """

    name: str  # set by its registration, `@TASKS.register(name)`
    version: str = "1"
    description: str = ""
    eval_splits: tuple[EvalSplit, ...] = ()
    suite: str = "mini"  # the metric suite (bench.metrics.suites) that scores its outputs

    def load(self, split: str, data_dir: Path | None) -> list[Example]:
        raise NotImplementedError

    def split(self, name: str) -> EvalSplit:
        for split in self.eval_splits:
            if split.name == name:
                return split
        from bench.errors import UserError

        valid = ", ".join(s.name for s in self.eval_splits)
        raise UserError(f"task {self.name!r} has no eval split {name!r}; valid splits: {valid}")

    def data_splits(self) -> tuple[str, ...]:
        """Every split `load` accepts: training, development, then the eval splits."""
        return (TRAIN, DEV, *(s.name for s in self.eval_splits))

    def check_split(self, split: str) -> None:
        """`load`'s guard: an unknown split is the user's error, named with the valid ones."""
        if split not in self.data_splits():
            from bench.errors import UserError

            valid = ", ".join(self.data_splits())
            raise UserError(f"task {self.name!r} has no split {split!r}; valid: {valid}")

    def eval_split_rows(self, data_dir: Path | None) -> dict[str, SplitRows]:
        """Every eval split as rows of the full split it is a subset of (`bench score` without
        `--split` reads one file of the full split's outputs). By default each split is its own
        full split; tasks whose splits are subsets of one test set override this, and their
        metric suite must then compute per-input statistics that do not depend on the corpus."""
        return {
            s.name: SplitRows(s.name, tuple(range(len(self.load(s.name, data_dir)))))
            for s in self.eval_splits
        }

    def data_files(self, data_dir: Path | None) -> list[Path]:
        """The files `load` reads, so runs can record their hashes; none for generated tasks."""
        return []

    def recipe(self) -> dict[str, object]:
        """How the splits are built (sources, filters, sampling), recorded with every run."""
        return {}

    def pool_sizes(self, data_dir: Path | None) -> dict[str, dict[str, int | str]]:
        """Per split, the sizes of the pool a selection rule (topic, category) draws it from and
        of the split drawn, counted from metadata alone so `bench data stats` can show them
        without the texts; {} for tasks that select nothing or whose metadata is absent."""
        return {}


def low_data_subset(examples: list[Example], n: int | None, sample: int) -> list[Example]:
    """The `sample`-th seeded draw of `n` inputs (all of them when `n` is None or too large)."""
    if n is None or n >= len(examples):
        return examples
    return random.Random(f"low-data:{sample}:{n}").sample(examples, n)


def training_pairs(examples: list[Example]) -> list[tuple[str, str]]:
    """Every (source, reference) pair: models train on each reference as its own target."""
    return [(ex.source, ref) for ex in examples for ref in ex.references]
