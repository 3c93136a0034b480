"""The embedded mini tasks: `mini-e2e` (E2E-like slot records) and `mini-webnlg` (WebNLG-like
triples with seen and unseen domains). Generated from the mini world, deterministic, no files."""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path
from typing import ClassVar

from bench.mini import world
from bench.spec.registry import TASKS
from bench.spec.task import DEV, TRAIN, EvalSplit, Example, SplitRows, Task

REFERENCES_PER_INPUT = 3


def _example(entity: world.Entity, facts: list[tuple[str, str]], source: str, key: str) -> Example:
    references = tuple(
        world.realize(entity, facts, random.Random(f"{key}:ref{i}"))
        for i in range(REFERENCES_PER_INPUT)
    )
    return Example(source, references)


@TASKS.register("mini-e2e")
class MiniE2E(Task):
    version = world.WORLD_VERSION
    description = "E2E-like restaurant records (name, eatType and 2-6 more slots), 3 references"
    eval_splits = (EvalSplit("test", ood=False),)
    sizes: ClassVar[dict[str, int]] = {TRAIN: 600, DEV: 100, "test": 200}

    def load(self, split: str, data_dir: Path | None = None) -> list[Example]:
        return list(_e2e(split, self.sizes[split]))


@cache
def _e2e(split: str, n: int) -> tuple[Example, ...]:
    rng = random.Random(f"mini-e2e:{split}")
    examples = []
    for i in range(n):
        entity = world.make_entity(world.RESTAURANT, rng)
        eat_type, *optional = entity.facts
        facts = [eat_type, *rng.sample(optional, rng.randint(2, len(optional)))]
        source = world.linearize_record(entity, facts)
        examples.append(_example(entity, facts, source, f"mini-e2e:{split}:{i}"))
    return tuple(examples)


@TASKS.register("mini-webnlg")
class MiniWebNLG(Task):
    version = world.WORLD_VERSION
    description = (
        "WebNLG-like triples about one entity (1-4 facts), 3 references; test_seen has the "
        f"training domains, test_unseen has {len(world.UNSEEN_DOMAINS)} domains never trained on"
    )
    eval_splits = (
        EvalSplit("test_seen", ood=False),
        EvalSplit("test_unseen", ood=True),
        EvalSplit("test", ood=False, mixed=True),
    )
    sizes: ClassVar[dict[str, int]] = {TRAIN: 720, DEV: 120, "test_seen": 150, "test_unseen": 150}

    def load(self, split: str, data_dir: Path | None = None) -> list[Example]:
        if split == "test":  # as in WebNLG, "all categories" is seen followed by unseen
            return self.load("test_seen") + self.load("test_unseen")
        domains = world.UNSEEN_DOMAINS if split == "test_unseen" else world.SEEN_DOMAINS
        return list(_webnlg(split, self.sizes[split], domains))

    def eval_split_rows(self, data_dir: Path | None = None) -> dict[str, SplitRows]:
        """`test` is test_seen followed by test_unseen, so one file of it scores all three."""
        seen, unseen = self.sizes["test_seen"], self.sizes["test_unseen"]
        return {
            "test_seen": SplitRows("test", tuple(range(seen))),
            "test_unseen": SplitRows("test", tuple(range(seen, seen + unseen))),
            "test": SplitRows("test", tuple(range(seen + unseen))),
        }


@cache
def _webnlg(split: str, n: int, domains: tuple[str, ...]) -> tuple[Example, ...]:
    rng = random.Random(f"mini-webnlg:{split}")
    examples = []
    for i in range(n):
        entity = world.make_entity(world.DOMAINS[domains[i % len(domains)]], rng)
        facts = rng.sample(list(entity.facts), rng.randint(1, len(entity.facts)))
        source = world.linearize_triples(entity, facts)
        examples.append(_example(entity, facts, source, f"mini-webnlg:{split}:{i}"))
    return tuple(examples)
