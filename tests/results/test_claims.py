"""Claims: validated with their grid, evaluated with known answers on synthetic runs, and shown
first in the report of a stored paper-scale fixture (paper-table1's cells over three seeds,
their predictions made up so that each claim's verdict is known)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from bench.engine.record import ParamCounts, Prediction, Score
from bench.errors import UserError
from bench.reports.report import write_report
from bench.results.bundle import ResultsSource, load_source
from bench.results.claims import evaluate, evaluate_claims
from bench.results.store import Store, write_record
from bench.spec.claims import Claim
from bench.spec.grid import expand, load_grid
from tests.records import fake_record
from tests.runs import bench

WORDS = [f"w{i}" for i in range(20)]
N_INPUTS = 40


def references(split: str) -> list[str]:
    rng = random.Random(split)
    return [" ".join(rng.choices(WORDS, k=rng.randint(8, 14))) for _ in range(N_INPUTS)]


def outputs(split: str, keep: float, noise: str) -> list[str]:
    """Outputs that keep each reference word with probability `keep` (`noise` picks which)."""
    rng = random.Random(noise)
    return [
        " ".join(w if rng.random() < keep else "x" for w in r.split()) for r in references(split)
    ]


PAPER = "grids/paper-table1.yaml"


def paper_grid(tmp_path: Path) -> Path:
    """paper-table1 with three seeds (its claims need runs), cut to the methods its claims
    compare (FT and prefix: 18 cells; every cell's outputs are scored by the report)."""
    raw = yaml.safe_load(Path(PAPER).read_text())
    raw["seeds"] = [0, 1, 2]
    raw["methods"] = [m for m in raw["methods"] if m.get("label") in ("FT", "prefix")]
    path = tmp_path / "paper-table1.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def keep(task: str, split: str, label: str, seed: int) -> tuple[float, str]:
    """Each cell's output quality: on E2E prefix writes FT's outputs (within 0 BLEU); on DART
    it keeps far fewer words (outside 1 BLEU); on WebNLG unseen it beats FT."""
    if task == "e2e" and label in ("FT", "prefix"):
        return 0.8, f"e2e{seed}"
    if task == "dart":
        return (0.4 if label == "prefix" else 0.9), f"{task}{label}{seed}"
    if task == "webnlg" and split == "test_unseen":
        return (0.9 if label == "prefix" else 0.5) + 0.01 * seed, f"{label}{seed}"
    return 0.7, f"{task}{split}{label}{seed}"


@pytest.fixture(scope="module")
def paper_store(tmp_path_factory) -> Path:
    """A results directory holding paper-table1's FT and prefix cells over three seeds (the
    parameter counts of gpt2-medium), each with made-up predictions."""
    root = tmp_path_factory.mktemp("paper")
    spec, text = load_grid(str(paper_grid(root)))
    results = root / "results"
    results.mkdir()
    store = Store(results / "bench.sqlite")
    total = 354_823_168
    for cell in expand(spec):
        predictions, scores = {}, []
        for split in cell.splits:
            quality, noise = keep(cell.task, split, cell.label, cell.seed)
            refs = references(f"{cell.task}:{split}")
            outs = outputs(f"{cell.task}:{split}", quality, noise)
            predictions[split] = [
                Prediction(f"in {i}", out, (ref,))
                for i, (out, ref) in enumerate(zip(outs, refs, strict=True))
            ]
            scores.append(Score(split, split == "test_unseen", "bleu", quality, N_INPUTS))
        stored = 245_760 if cell.method == "prefix" else total  # prefix: 0.07% of gpt2-medium
        record = fake_record(
            cell, predictions=predictions, scores=scores,
            params=ParamCounts(trained=stored, stored=stored, total=total, stored_bytes=4 * stored),
        )  # fmt: skip
        store.start_cell(cell.id, cell.model_dump(mode="json"))
        write_record(store, results, record)
    store.register_grid(spec.name, text, [c.id for c in expand(spec)])
    store.close()
    return results


def test_the_paper_fixture_reports_each_claim_with_its_known_verdict(paper_store):
    spec, _ = load_grid(str(paper_grid(paper_store.parent)))
    results = evaluate_claims(spec, load_source(paper_store, "paper-table1"))
    assert [r.status for r in results] == ["supported", "contradicted", "supported"]
    e2e, dart, webnlg = results
    assert e2e.evidence[0].delta == 0 and e2e.evidence[0].runs == (3, 3)
    assert "stores 0.069% of the parameters" in e2e.notes[0]
    assert dart.evidence[0].high < -1 and webnlg.evidence[0].low > 0
    store = Store.open_existing(paper_store)
    report = write_report(store, "paper-table1", paper_store / "reports" / "paper-table1")
    store.close()
    markdown = (report.parent / "report.md").read_text()
    claims = markdown.index("## Claims")
    assert claims < markdown.index("## Table") and claims < markdown.index("## Methods compared")
    assert "3 claims: 2 supported, 1 contradicted, 0 inconclusive" in markdown
    assert "| Prefix-tuning is comparable to fine-tuning on DART (prefix within 1 bleu of FT " in (
        markdown
    )
    page = report.read_text()
    assert page.index('id="claims"') < page.index('id="methods"')
    assert "<td class='contradicted'>contradicted</td>" in page


# --- evaluation rules on two synthetic methods -----------------------------------------------
def run(label: str, seed: int, keep_: float, sample: int = 0, n_train: int | None = None):
    from bench.results.bundle import CellResults, SplitOutputs, StoredScore

    config = {"task": "mini-e2e", "method": label, "label": label, "settings": {},
              "model": "mini", "n_train": n_train, "sample": sample, "seed": seed}  # fmt: skip
    refs = references("mini")
    preds = outputs("mini", keep_, f"{label}{seed}{sample}")
    score = StoredScore(0.5, ood=False, n=N_INPUTS, low=None, high=None)
    return CellResults(
        id=f"{label}{seed}{sample}", config=config, grids=["g"], provenance={},
        params={"trained": 10, "stored": 10, "total": 1000},
        scores={"test": {"bleu": score}},
        outputs={"test": SplitOutputs([f"in {i}" for i in range(N_INPUTS)], preds,
                                      [[r] for r in refs])},
    )  # fmt: skip


SPEC = load_grid("mini")[0]


def claim(**fields) -> Claim:
    base = {"claim": "c", "method": "prefix", "than": ["finetune"], "task": "mini-e2e",
            "splits": ["test"], "relation": "above"}  # fmt: skip
    return Claim(**{**base, **fields})


PREFIX = "prefix(length=10)"  # the mini grid's label of its prefix entry


def source(prefix: float, finetune: float, seeds: int = 3) -> ResultsSource:
    cells = [run(PREFIX, s, prefix + 0.01 * s) for s in range(seeds)]
    cells += [run("finetune", s, finetune + 0.01 * s) for s in range(seeds)]
    return ResultsSource("s", cells)


@pytest.mark.parametrize(
    ("relation", "margin", "prefix", "finetune", "status"),
    [
        ("above", 0, 0.9, 0.4, "supported"),
        ("above", 0, 0.4, 0.9, "contradicted"),
        ("below", 0, 0.4, 0.9, "supported"),
        ("below", 0, 0.9, 0.4, "contradicted"),
        ("within", 1, 0.9, 0.4, "contradicted"),
        ("at_least", 0, 0.9, 0.4, "supported"),
        ("at_least", 0, 0.4, 0.9, "contradicted"),
        ("within", 200, 0.7, 0.69, "supported"),
    ],
)
def test_each_relation_is_judged_by_where_its_interval_lies(
    relation, margin, prefix, finetune, status
):
    result = evaluate(SPEC, claim(relation=relation, margin=margin), source(prefix, finetune))
    assert result.status == status, result.evidence


def test_close_methods_are_inconclusive_and_one_run_a_side_always_is():
    close = evaluate(SPEC, claim(), source(0.70, 0.70))
    assert close.status == "inconclusive" and close.evidence[0].low < 0 < close.evidence[0].high
    one = evaluate(SPEC, claim(), source(0.9, 0.4, seeds=1))
    assert one.status == "inconclusive" and "one run a side" in one.evidence[0].note


def test_low_data_subsets_are_runs_and_a_missing_method_is_said():
    cells = [run(m, 0, q, sample=s, n_train=100) for s in range(3) for m, q in
             ((PREFIX, 0.9 - 0.01 * s), ("finetune", 0.4 + 0.01 * s))]  # fmt: skip
    result = evaluate(SPEC, claim(n_train=100), ResultsSource("low", cells))
    assert result.status == "supported" and result.evidence[0].runs == (3, 3)
    missing = evaluate(SPEC, claim(n_train=None), ResultsSource("low", cells))
    assert missing.status == "inconclusive"
    assert "no finished cells of prefix(length=10) on mini-e2e" in missing.evidence[0].note


def test_a_method_storing_more_than_its_share_contradicts_the_claim():
    result = evaluate(SPEC, claim(max_stored_share=0.001), source(0.9, 0.4))
    assert result.status == "contradicted" and "stores 1.000% of the parameters" in result.notes[0]


# --- validation ------------------------------------------------------------------------------
def grid_with(tmp_path: Path, claim_yaml: str) -> Path:
    text = Path("grids/mini.yaml").read_text().split("\nclaims:")[0]
    path = tmp_path / "g.yaml"
    path.write_text(f"{text}\nclaims:\n{claim_yaml}")
    return path


def claim_yaml(**fields) -> str:
    base = {"claim": "c", "method": "prefix", "than": ["finetune"], "task": "mini-e2e",
            "splits": ["test"], "relation": "above"}  # fmt: skip
    return "  - " + json.dumps({**base, **fields}).replace('"NaN"', ".nan") + "\n"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"method": "prefx"}, "no method 'prefx' in this grid; did you mean 'prefix'?"),
        ({"than": ["finetune", "lora"]}, "no method 'lora' in this grid"),
        ({"task": "e2e"}, "task 'e2e' is not in this grid"),
        ({"splits": ["test_seen"]}, "has no eval split 'test_seen'"),
        ({"n_train": 100}, "n_train 100 is not a training size of mini-e2e"),
        ({"relation": "nearer"}, "relation"),
        ({"relation": "within", "margin": "NaN"}, "margin: nan is not a finite number"),
        ({"color": "red"}, "color"),
    ],
)
def test_a_bad_claim_is_refused_with_the_grid(tmp_path, fields, message):
    with pytest.raises(UserError, match=r"claims\.0") as error:
        load_grid(str(grid_with(tmp_path, claim_yaml(**fields))))
    assert message in str(error.value)


def test_a_claim_on_a_metric_its_task_lacks_fails_the_run_before_anything_is_written(tmp_path):
    path = grid_with(tmp_path, claim_yaml(metric="meteor"))
    result = bench("run", "--grid", str(path), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "claims.0: metric 'meteor' is not one of mini-e2e's (bleu, rouge_l)" in result.stderr
    assert not (tmp_path / "r").exists()


def test_the_default_grid_carries_claims_it_can_test():
    spec, _ = load_grid("mini")
    assert [c.relation for c in spec.claims] == ["within", "above", "below"]
    # E2E parity (within 1 BLEU) with prefix far behind: contradicted, with its evidence.
    result = evaluate(spec, spec.claims[0], source(0.4, 0.9))
    assert result.status == "contradicted" and result.evidence[0].high < -1
