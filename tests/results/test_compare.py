"""The regression gate: bundles, `bench compare`, `bench run --check`, and the committed baseline.

A tiny grid (mini-tiny, seconds) is run once for the module; candidates that are worse, better,
partial or on other inputs are derived from it by editing predictions, so every verdict is
certain rather than left to training noise. One slow test runs the real default grid against
`baselines/mini.json.gz`, as CI does.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.results.bundle import (
    FORMAT,
    CellResults,
    ResultsSource,
    SplitOutputs,
    StoredScore,
    cell_entry,
    load_source,
)
from bench.results.compare import compare_methods, compare_sources, fingerprint, summary
from tests.conftest import TINY_GRID
from tests.runs import ROOT, bench

BASELINE = ROOT / "baselines" / "mini.json.gz"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    """The tiny grid's results directory (4 cells: 2 methods x 2 tasks)."""
    root = tmp_path_factory.mktemp("tiny")
    grid = root / "tiny.yaml"
    grid.write_text(TINY_GRID)
    run = bench("run", "--grid", str(grid), "--results-dir", str(root / "results"))
    assert run.returncode == 0, run.stderr
    return root / "results"


@pytest.fixture(scope="module")
def tiny_bundle(tiny: Path) -> Path:
    out = tiny.parent / "tiny.json.gz"
    exported = bench("export", "--results-dir", str(tiny), "--format", "bundle", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    return out


def compare_json(*args: str) -> tuple[int, dict]:
    result = bench("compare", *args, "--json")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def perfect_copy(results: Path, dest: Path, task: str, method: str) -> Path:
    """A copy of a results dir whose (task, method) cell predicts its first reference: any real
    system is significantly worse than it."""
    shutil.copytree(results, dest)
    cells = [c for c in load_source(dest).cells if c.config["task"] == task]
    (cell,) = [c for c in cells if c.config["method"] == method]
    for path in (dest / "cells" / cell.id / "predictions").glob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text(
            "".join(json.dumps({**r, "prediction": r["references"][0]}) + "\n" for r in rows)
        )
    return dest


def test_a_results_dir_against_itself_and_its_bundle_is_all_same(tiny, tiny_bundle):
    for baseline in (tiny, tiny_bundle):
        code, report = compare_json(str(baseline), str(tiny), "--fail-on-regression")
        assert code == 0
        assert len(report["rows"]) == 2 * (1 + 2) * 2  # methods x splits x metrics
        assert {r["verdict"] for r in report["rows"]} == {"same"}
        assert all(r["delta"] == 0 and r["low"] == 0 == r["high"] for r in report["rows"])
        assert report["not_compared"] == [] and report["regressions"] == 0


def test_a_bundle_round_trips_the_results_dir(tiny, tiny_bundle, tmp_path):
    assert load_source(tiny_bundle).cells == load_source(tiny).cells
    again = tmp_path / "again.json.gz"
    bench("export", "--results-dir", str(tiny), "--format", "bundle", "--out", str(again))
    assert again.read_bytes() == tiny_bundle.read_bytes()  # no timestamps: no spurious diffs
    bundle = json.loads(gzip.decompress(tiny_bundle.read_bytes()))
    assert bundle["format"] == "bench-bundle/1" and len(bundle["cells"]) == 4
    rows = bundle["cells"][0]["predictions"]["test"]
    assert set(rows[0]) == {"source", "prediction", "references"} and len(rows) == 12


def test_a_worse_candidate_fails_the_gate_beyond_the_tolerance(tiny, tmp_path):
    better = perfect_copy(tiny, tmp_path / "better", "mini-e2e", "finetune")
    code, report = compare_json(str(better), str(tiny), "--fail-on-regression")
    assert code == 1 and report["regressions"] == 2  # bleu and rouge_l of that one cell
    worse = [r for r in report["rows"] if r["verdict"] == "worse"]
    assert {(r["task"], r["split"], r["metric"]) for r in worse} == {
        ("mini-e2e", "test", "bleu"),
        ("mini-e2e", "test", "rouge_l"),
    }
    assert all(r["high"] < 0 and r["low"] <= r["delta"] <= r["high"] for r in worse)
    assert {r["verdict"] for r in report["rows"] if r not in worse} == {"same"}

    assert compare_json(str(better), str(tiny))[0] == 0  # reported, but not failing
    assert (
        compare_json(str(better), str(tiny), "--fail-on-regression", "--tolerance", "101")[0] == 0
    )
    code, report = compare_json(str(tiny), str(better), "--fail-on-regression")
    assert code == 0 and {r["verdict"] for r in report["rows"]} == {"better", "same"}

    table = bench("compare", str(better), str(tiny), "--metric", "bleu").stdout
    assert "worse: regression" in table and "rouge_l" not in table
    assert "6 metrics compared: 0 better, 5 same, 1 worse; 1 regression" in table


def test_a_lower_is_better_metric_regresses_when_it_rises(tiny):
    """TER: the verdict follows the metric's direction, so a higher TER is the regression."""
    from bench.metrics.bootstrap import paired_bootstrap
    from bench.metrics.ter import Ter

    metric = Ter()
    refs = [["the cat sat on the mat"], ["a dog ran in the park"]] * 20
    good = metric.segment_stats([r[0] for r in refs], refs)
    bad = metric.segment_stats(["cat mat"] * len(refs), refs)
    comparison = paired_bootstrap(metric, bad, good)
    assert comparison.delta > 0 and comparison.verdict == "worse"


def test_unmatched_cells_splits_and_inputs_are_listed(tiny):
    source = load_source(tiny)
    # Drop mini-e2e prefix; give mini-webnlg finetune another first input on every split.
    rest = sorted(
        source.cells, key=lambda c: (c.config["task"] != "mini-e2e", c.config["method"] != "prefix")
    )[1:]
    edited = dataclasses.replace(
        rest[-1],
        outputs={
            split: dataclasses.replace(out, sources=["another input", *out.sources[1:]])
            for split, out in rest[-1].outputs.items()
        },
    )
    candidate = ResultsSource("candidate", [*rest[:-1], edited])
    report = compare_sources(ResultsSource("baseline", source.cells), candidate)
    reasons = [(item.task, item.split, item.reason) for item in report.not_compared]
    assert ("mini-e2e", None, "only in baseline") in reasons
    assert sum("inputs differ" in reason for *_, reason in reasons) == len(edited.outputs)
    assert len(report.rows) == (1 + 2) * 2  # mini-e2e finetune, mini-webnlg prefix

    one_split = dataclasses.replace(
        rest[-1], scores={k: v for k, v in rest[-1].scores.items() if k == "test_seen"}
    )
    report = compare_sources(source, ResultsSource("partial", [*rest[:-1], one_split]))
    assert any(item.reason == "split only in " + str(tiny) for item in report.not_compared)


def test_run_check_compares_the_grid_and_exits_1_on_a_regression(tiny, tiny_bundle, tmp_path):
    better = perfect_copy(tiny, tmp_path / "better", "mini-webnlg", "prefix")
    grid = tmp_path / "tiny.yaml"
    grid.write_text(TINY_GRID)
    # The cells are finished, so the runs only compare (seconds).
    same = bench(
        "run", "--grid", str(grid), "--results-dir", str(tiny), "--check", str(tiny_bundle)
    )
    assert same.returncode == 0, same.stderr
    assert "0 worse; no regression" in same.stderr
    worse = bench("run", "--grid", str(grid), "--results-dir", str(tiny), "--check", str(better))
    assert worse.returncode == 1 and "regression" in worse.stderr
    tolerated = bench(
        "run",
        "--grid",
        str(grid),
        "--results-dir",
        str(tiny),
        "--check",
        str(better),
        "--tolerance",
        "101",
    )
    assert tolerated.returncode == 0, tolerated.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "nowhere", "{tiny}"], "nowhere does not exist"),
        (["compare", "{grid}", "{tiny}"], "is not a bundle"),
        (["compare", "{empty}", "{tiny}"], "is not a results directory"),
        (["compare", "{tiny}", "{tiny}", "--metric", "ter"], "unknown metric 'ter'"),
        (["compare", "{tiny}", "{tiny}", "--grid", "nope"], "no grid 'nope'"),
        (["export", "--results-dir", "{tiny}", "--format", "bundle"], "pass --out FILE"),
        (["run", "--grid", "{grid}", "--check", "nowhere"], "nowhere does not exist"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2(tiny, tmp_path, args, message):
    grid = tmp_path / "tiny.yaml"
    grid.write_text(TINY_GRID)
    (tmp_path / "empty").mkdir()
    paths = {"tiny": tiny, "grid": grid, "empty": tmp_path / "empty"}
    result = bench(*(a.format(**paths) for a in args), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_the_default_grid_does_not_regress_against_the_committed_baseline(tmp_path):
    """The real default grid as a user runs it, 12 cells side by side on one thread each
    (about 3 minutes on a 2-core x86-64 machine), checked against the committed baseline with
    no tolerance: the gate's test over seeds is the allowance for noise. Its report opens with
    the grid's claims."""
    run = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--grid", "--results-dir", str(tmp_path / "r"),
         "--check", str(BASELINE)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"},
        timeout=3600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-5000:]
    assert "12 run, 0 already done, 0 failed" in run.stderr
    assert "16 metrics compared" in run.stderr and "; 0 not compared" in run.stderr
    assert "3 claims:" in run.stderr
    report = (tmp_path / "r" / "reports" / "mini" / "report.md").read_text()
    assert report.index("## Claims") < report.index("## Methods compared")
    tags = {(c.config["task"], split): score.tag for c in load_source(tmp_path / "r").cells
            for split, scores in c.scores.items() for score in scores.values()}  # fmt: skip
    assert tags[("mini-webnlg", "test")] == "all" and tags[("mini-webnlg", "test_unseen")] == "OOD"
    assert tags[("mini-webnlg", "test_seen")] == tags[("mini-e2e", "test")] == "ID"


# --- several seeds: synthetic cells, no training ------------------------------------------------
WORDS = [f"w{i}" for i in range(15)]


def _references(n: int = 60) -> list[list[str]]:
    rng = random.Random("refs")
    return [[" ".join(rng.choices(WORDS, k=rng.randint(6, 12)))] for _ in range(n)]


def _outputs(references: list[list[str]], keep: float, noise: str) -> list[str]:
    """Outputs that keep each reference word with probability `keep`: quality set by `keep`,
    with `noise` (a seed's name) choosing which words go."""
    rng = random.Random(noise)
    return [" ".join(w if rng.random() < keep else "xx" for w in r[0].split()) for r in references]


def _cell(seed: int, predictions: list[str], references: list[list[str]]) -> CellResults:
    """A finished mini-e2e finetune cell of this seed (only what compare reads)."""
    config = {
        "task": "mini-e2e",
        "method": "finetune",
        "label": "finetune",
        "settings": {},
        "model": "mini",
        "n_train": None,
        "sample": 0,
        "seed": seed,
    }
    score = StoredScore(0.5, ood=False, n=len(references), low=None, high=None)
    return CellResults(
        id=f"cell{seed}",
        config=config,
        grids=["synthetic"],
        provenance={},
        params={},
        scores={"test": {"bleu": score, "rouge_l": score}},
        outputs={
            "test": SplitOutputs(
                [f"in {i}" for i in range(len(references))], predictions, references
            )
        },
    )


def _source(name: str, keeps: dict[int, float], tag: str) -> ResultsSource:
    """A source with one cell per seed; `keeps`: seed -> output quality."""
    refs = _references()
    return ResultsSource(
        name,
        [_cell(seed, _outputs(refs, keep, f"{tag}{seed}"), refs) for seed, keep in keeps.items()],
    )


def _bundle(source: ResultsSource, path: Path) -> Path:
    """The source as a bundle file, for the CLI."""
    cells = [cell_entry(c) for c in source.cells]
    path.write_bytes(
        gzip.compress(json.dumps({"format": FORMAT, "grid": None, "cells": cells}).encode())
    )
    return path


BASE_KEEPS = {0: 0.85, 1: 0.65, 2: 0.75}  # seed-to-seed noise: BLEU differs a lot by seed


def test_several_seeds_give_one_row_per_split_and_metric(tmp_path):
    base = _source("base", BASE_KEEPS, "base")
    same = compare_sources(base, base)
    assert [(r.metric, r.seeds, r.cell) for r in same.rows] == [
        ("bleu", [0, 1, 2], "finetune seeds 0,1,2"),
        ("rouge_l", [0, 1, 2], "finetune seeds 0,1,2"),
    ]
    # Seed s pairs with seed s: unchanged results are exactly 0, as with one seed.
    assert all(r.delta == r.low == r.high == 0 and r.paired for r in same.rows)
    assert all(r.seed_scores == r.baseline_seed_scores and not r.regression for r in same.rows)

    cand = _source("cand", {s: k - 0.1 for s, k in BASE_KEEPS.items()}, "cand")
    table = bench("compare", str(_bundle(base, tmp_path / "b.json.gz")),
                  str(_bundle(cand, tmp_path / "c.json.gz"))).stdout  # fmt: skip
    rows = [line for line in table.splitlines() if "finetune" in line]
    assert len(rows) == 2 and all("seeds 0,1,2" in line for line in rows)
    text = " ".join(table.split())  # the caption may wrap
    assert "CI of a t-test over seeds with the test inputs resampled" in text
    assert "2 metrics compared: 0 better, 0 same, 2 worse; 2 regressions" in text
    assert "Holm-corrected across the 2, family-wise 2.5%" in text


def test_a_systematic_regression_over_seeds_fails_the_gate(tmp_path):
    base = _source("base", BASE_KEEPS, "base")
    cand = _source("cand", {s: k - 0.1 for s, k in BASE_KEEPS.items()}, "cand")
    report = compare_sources(base, cand)
    for row in report.rows:
        assert row.verdict == "worse" and row.regression and row.high < 0 and row.paired
        deltas = [c - b for c, b in zip(row.seed_scores, row.baseline_seed_scores, strict=True)]
        assert row.delta == pytest.approx(sum(deltas) / 3)
        assert row.low <= row.delta <= row.high and all(d < 0 for d in deltas)
        assert row.p_worse <= row.p_adjusted < 0.025
    args = [str(_bundle(base, tmp_path / "b.json.gz")), str(_bundle(cand, tmp_path / "c.json.gz"))]
    code, out = compare_json(*args, "--fail-on-regression")
    assert code == 1 and out["regressions"] == 2 and len(out["rows"]) == 2
    assert out["rows"][0]["seeds"] == [0, 1, 2] and len(out["rows"][0]["seed_scores"]) == 3
    assert compare_json(*args, "--fail-on-regression", "--tolerance", "101")[0] == 0


def _one_seed(source: ResultsSource, seed: int) -> ResultsSource:
    return ResultsSource(source.name, [c for c in source.cells if c.key.seed == seed])


def test_seed_noise_with_no_mean_difference_is_no_regression(tmp_path):
    """The candidate is the baseline with its seeds' outputs rotated: each seed alone differs
    significantly (one of them worse), but the mean over seeds does not move."""
    base = _source("base", BASE_KEEPS, "base")
    rotated = [
        dataclasses.replace(cell, config={**cell.config, "seed": (cell.key.seed + 1) % 3})
        for cell in base.cells
    ]
    cand = ResultsSource("cand", rotated)
    per_seed = [compare_sources(_one_seed(base, s), _one_seed(cand, s)) for s in BASE_KEEPS]
    assert all(r.verdict != "same" for one in per_seed for r in one.rows)
    assert any(one.regressions for one in per_seed)  # today's gate, seed by seed, would fail
    report = compare_sources(base, cand)
    assert len(report.rows) == 2 and not report.regressions
    for row in report.rows:
        assert row.verdict == "same" and row.low < 0 < row.high
        deltas = [c - b for c, b in zip(row.seed_scores, row.baseline_seed_scores, strict=True)]
        assert row.delta == pytest.approx(0, abs=1e-9) and min(deltas) < -5
    args = [str(_bundle(base, tmp_path / "b.json.gz")), str(_bundle(cand, tmp_path / "c.json.gz"))]
    assert compare_json(*args, "--fail-on-regression")[0] == 0


def test_one_seed_a_side_is_the_paired_bootstrap_over_inputs():
    from bench.metrics.suites import compare_suite, paper_factor

    base = _one_seed(_source("base", BASE_KEEPS, "base"), 0)
    cand = _source("cand", {0: 0.75}, "cand")
    report = compare_sources(base, cand)
    assert [(r.cell, r.seeds, r.noise) for r in report.rows] == [
        ("finetune seed 0", [0], "inputs only (one seed a side)")
    ] * 2
    out, ref = cand.cells[0].outputs["test"], base.cells[0].outputs["test"]
    expected = compare_suite("mini", out.predictions, ref.predictions, out.references)
    for row in report.rows:
        c, factor = expected[row.metric], paper_factor("mini", row.metric)
        assert (row.delta, row.low, row.high) == (c.delta * factor, c.low * factor, c.high * factor)
        assert row.verdict == c.verdict == "worse" and row.p_value == c.p_value
    assert "one seed a side: a verdict may be training noise" in summary(report)


def test_other_seeds_are_compared_unpaired_and_one_seed_borrows_the_others_spread():
    base = _source("base", BASE_KEEPS, "base")
    cand = _source("cand", {7: 0.75}, "cand")  # a seed the baseline never ran
    report = compare_sources(base, cand)
    assert not report.not_compared
    for row in report.rows:
        assert (row.seeds, row.baseline_seeds, row.paired) == ([7], [0, 1, 2], False)
        assert row.noise == "seeds and inputs" and row.low < 0 < row.high  # within seed noise
        assert not row.regression


def test_different_hardware_is_said_and_the_same_is_not(tiny, tiny_bundle, tmp_path):
    _, report = compare_json(str(tiny_bundle), str(tiny))
    assert not report["hardware_differs"]
    assert report["hardware"]["baseline"] == report["hardware"]["candidate"]
    (print_,) = report["hardware"]["baseline"]
    assert "threads, torch" in print_ and "unknown" not in print_ and "?" not in print_
    bundle = json.loads(gzip.decompress(tiny_bundle.read_bytes()))
    for cell in bundle["cells"]:
        cell["provenance"]["hardware"].update(cpu_model="Other CPU", torch_threads=7)
    other = tmp_path / "other.json.gz"
    other.write_bytes(gzip.compress(json.dumps(bundle).encode()))
    _, report = compare_json(str(other), str(tiny))
    assert report["hardware_differs"] and "Other CPU" in report["hardware"]["baseline"][0]
    shown = bench("compare", str(other), str(tiny))
    lines = [line for line in shown.stdout.splitlines() if line.startswith("hardware differs")]
    assert len(lines) == 2 and "Other CPU" in lines[0] and "7 threads" in lines[0], shown.stdout


def test_cells_stored_before_fingerprints_show_what_they_recorded():
    old = {"hardware": {"gpu": None, "torch_threads": 2}, "versions": {"torch": "2.13.0+cpu"}}
    assert fingerprint(old) == "unknown CPU (?), no GPU, 2 threads, torch 2.13.0+cpu"
    assert fingerprint({}) == "unknown CPU (?), no GPU, ? threads, torch ?"


def _relabelled(source: ResultsSource, label: str, method: str) -> list[CellResults]:
    return [
        dataclasses.replace(cell, id=f"{label}{cell.id}",
                            config={**cell.config, "label": label, "method": method})
        for cell in source.cells
    ]  # fmt: skip


def test_methods_are_compared_pairwise_with_a_verdict_over_seeds(tmp_path):
    strong = _relabelled(_source("s", {s: k + 0.1 for s, k in BASE_KEEPS.items()}, "s"), "strong",
                         "finetune")  # fmt: skip
    weak = _relabelled(_source("w", BASE_KEEPS, "w"), "weak", "prefix")
    twin = _relabelled(_source("w", BASE_KEEPS, "w"), "twin", "adapter")  # weak's outputs
    reports = compare_methods(ResultsSource("grid", [*strong, *weak, *twin]))
    pairs = {(r.baseline, r.candidate): r for r in reports}
    assert set(pairs) == {("strong", "weak"), ("strong", "twin"), ("weak", "twin")}
    for row in pairs["strong", "weak"].rows:
        assert row.verdict == "worse" and not row.regression and row.seeds == [0, 1, 2]
    assert {row.verdict for row in pairs["weak", "twin"].rows} == {"same"}
    assert all(row.delta == 0 for row in pairs["weak", "twin"].rows)
    bundle = _bundle(ResultsSource("grid", [*strong, *weak]), tmp_path / "g.json.gz")
    shown = bench("compare-methods", str(bundle))
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "weak vs strong: 2 metrics, 0 better, 0 same, 2 worse" in text
    assert "regression" not in text


def test_methods_without_a_shared_experiment_are_refused():
    alone = _relabelled(_source("a", {0: 0.8}, "a"), "alone", "finetune")
    other = [dataclasses.replace(c, config={**c.config, "n_train": 9}) for c in
             _relabelled(_source("b", {0: 0.8}, "b"), "other", "prefix")]  # fmt: skip
    with pytest.raises(UserError, match="no two methods share an experiment"):
        compare_methods(ResultsSource("grid", [*alone, *other]))
