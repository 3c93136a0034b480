"""The mini world: deterministic, varied, and faithful to its inputs."""

from bench.mini import world
from bench.spec.registry import TASKS
from bench.spec.task import DEV, TRAIN


def test_domains_and_their_split():
    assert len(world.ALL_DOMAINS) >= 8
    assert set(world.SEEN_DOMAINS).isdisjoint(world.UNSEEN_DOMAINS)
    assert set(world.SEEN_DOMAINS) | set(world.UNSEEN_DOMAINS) <= set(world.DOMAINS)


def test_tasks_are_deterministic_and_every_reference_states_every_value():
    for name in ("mini-e2e", "mini-webnlg"):
        task = TASKS.get(name)()
        for split in (TRAIN, DEV, *(s.name for s in task.eval_splits)):
            examples = task.load(split)
            assert examples == TASKS.get(name)().load(split)
            for ex in examples[:50]:
                assert len(ex.references) >= 3
                values = [part.rsplit(" : ", 1)[1] for part in ex.source.split(" | ")]
                for ref in ex.references:
                    for value in values:
                        if value not in ("yes", "no"):  # familyFriendly is verbalized
                            assert value in ref, (value, ref)


def test_references_vary():
    examples = TASKS.get("mini-webnlg")().load(TRAIN)
    multi_fact = [ex for ex in examples if ex.source.count(" | ") >= 2]
    varied = sum(len(set(ex.references)) > 1 for ex in multi_fact)
    assert varied / len(multi_fact) > 0.9


def test_unseen_split_has_only_unseen_domains_and_test_is_seen_plus_unseen():
    task = TASKS.get("mini-webnlg")()
    relations = {r.name for d in world.UNSEEN_DOMAINS for r in world.DOMAINS[d].relations}
    seen_relations = {r.name for d in world.SEEN_DOMAINS for r in world.DOMAINS[d].relations}
    for ex in task.load("test_unseen"):
        assert {part.split(" : ")[1] for part in ex.source.split(" | ")} <= relations
    for ex in task.load(TRAIN):
        assert {part.split(" : ")[1] for part in ex.source.split(" | ")} <= seen_relations
    assert task.load("test") == task.load("test_seen") + task.load("test_unseen")
    assert [s.name for s in task.eval_splits if s.ood] == ["test_unseen"]
    assert [s.name for s in task.eval_splits if s.mixed] == ["test"]  # seen + unseen: "all"


def test_pretraining_corpus_covers_all_domains_with_other_entities():
    docs = world.pretraining_corpus(0, 20, infobox_share=1.0)
    assert len(docs) == 20 * len(world.ALL_DOMAINS)
    for domain in world.ALL_DOMAINS:
        assert any(f"({domain})" in doc for doc in docs)
    task_sources = {ex.source.split(" : ")[0] for ex in TASKS.get("mini-webnlg")().load(TRAIN)}
    corpus_names = {doc.split(" (")[0] for doc in docs}
    # Names come from finite lexicons, so a few collide by chance.
    assert len(task_sources & corpus_names) < 0.1 * len(task_sources)
