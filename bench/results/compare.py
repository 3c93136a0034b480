"""The regression gate: compare a candidate's results with a baseline's, cell by cell.

Cells are matched by their experiment coordinates (`bench.results.bundle.CellKey`: task, method,
settings, model, training size and sample, seed), not by cell id, so a change to training or
decoding settings, the mini LM or a task's data still meets its baseline. Per matched cell, split
and metric, a paired bootstrap over the test inputs (`bench.metrics.suites.compare_suite`, from
the stored predictions) gives the delta (candidate minus baseline), its 95% interval and a
verdict in the metric's own direction (TER: lower is better). A **regression** is a "worse"
verdict whose delta exceeds the tolerance; both are on the paper's scale of the metric (E2E BLEU
x 100), like the reports. Cells or splits that cannot be paired are listed, never dropped.

One seed's delta mixes the change under test with training noise. So where two or more seeds of
an experiment (its coordinates but the seed) pair up on a split, that split gets one verdict per
metric instead of one per seed: the mean of the per-seed deltas, with the interval of a bootstrap
over seeds and test inputs together (`bench.metrics.bootstrap.seed_bootstrap`). Seed s of the
candidate pairs with seed s of the baseline, like a single-seed cell: the same experiment, so
unchanged results give a delta and interval of exactly 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from bench.errors import UserError
from bench.metrics.bootstrap import Comparison, seed_bootstrap
from bench.results.bundle import CellKey, CellResults, ResultsSource

Pair = tuple[CellResults, CellResults]  # one seed's cell in the baseline, and in the candidate
ALL_SEEDS = -1  # the seed of an experiment's key: its cells of every seed


@dataclass(frozen=True)
class MetricComparison:
    """One (cell, split, metric), or one (experiment, split, metric) over several seeds: scores
    and delta on the paper's scale. Over seeds, scores and delta are means over the seeds."""

    task: str
    cell: str  # the cell's label, size and seed (or seeds)
    split: str
    ood: bool
    metric: str
    baseline: float | None  # the stored score (None: not stored, e.g. computed now only)
    candidate: float | None
    delta: float
    low: float
    high: float
    p_value: float
    verdict: str  # better | same | worse, from the candidate's side
    regression: bool  # worse by more than the tolerance
    seeds: list[int]  # the seeds compared, the same on both sides
    seed_deltas: list[float]  # each seed's delta, in the order of `seeds`
    tag: str = "ID"  # ID, OOD or all (a split mixing both)


@dataclass(frozen=True)
class NotCompared:
    """A cell, split or metric present on one side only, or that cannot be paired, and why."""

    task: str
    cell: str
    split: str | None
    reason: str


@dataclass
class ComparisonReport:
    baseline: str
    candidate: str
    tolerance: float
    rows: list[MetricComparison] = field(default_factory=list)
    not_compared: list[NotCompared] = field(default_factory=list)
    hardware: dict[str, list[str]] = field(default_factory=dict)  # side -> its fingerprints

    @property
    def hardware_differs(self) -> bool:
        return len({tuple(prints) for prints in self.hardware.values()}) > 1

    @property
    def regressions(self) -> list[MetricComparison]:
        return [row for row in self.rows if row.regression]

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "tolerance": self.tolerance,
            "scale": "paper",
            "regressions": len(self.regressions),
            "rows": [asdict(row) for row in self.rows],
            "not_compared": [asdict(item) for item in self.not_compared],
            "hardware": self.hardware,
            "hardware_differs": self.hardware_differs,
        }


def compare_sources(
    baseline: ResultsSource,
    candidate: ResultsSource,
    metrics: Sequence[str] = (),
    tolerance: float = 0.0,
) -> ComparisonReport:
    """Pair the two sources' cells and compare every shared split and metric (or `metrics`)."""
    if not math.isfinite(tolerance) or tolerance < 0:  # NaN would make every test pass
        raise UserError(f"tolerance {tolerance} is not a finite number >= 0")
    base, cand = _by_key(baseline), _by_key(candidate)
    suites = _suites({key.task for key in (*base, *cand)})
    _check_metrics(metrics, suites)
    shared = [key for key in base if key in cand]
    if not shared:
        raise UserError(
            f"no cells in common between {baseline.name} ({len(base)} cells) and "
            f"{candidate.name} ({len(cand)} cells): cells match by task, method, settings, "
            "model, n_train, sample and seed"
        )
    report = ComparisonReport(baseline.name, candidate.name, tolerance)
    report.hardware = {
        "baseline": _fingerprints([base[key] for key in shared]),
        "candidate": _fingerprints([cand[key] for key in shared]),
    }
    for key in base:
        if key not in cand:
            report.not_compared.append(_missing(base[key], f"only in {baseline.name}"))
    for key in cand:
        if key not in base:
            report.not_compared.append(_missing(cand[key], f"only in {candidate.name}"))
    experiments: dict[tuple[CellKey, str], list[Pair]] = {}
    for key in shared:
        for split in dict.fromkeys([*base[key].scores, *cand[key].scores]):
            reason = _unpairable(report, base[key], cand[key], split)
            if reason:
                report.not_compared.append(
                    NotCompared(key.task, cand[key].describe(), split, reason)
                )
            else:
                experiment = (replace(key, seed=ALL_SEEDS), split)
                experiments.setdefault(experiment, []).append((base[key], cand[key]))
    for (key, split), pairs in experiments.items():
        _compare_split(report, pairs, split, suites[key.task], metrics)
    return report


def fingerprint(provenance: dict[str, Any]) -> str:
    """What a cell's numbers depend on beyond its config, in one line: the CPU and torch's CPU
    kernels, the GPU, threads, torch and CUDA builds ("unknown" or "?" where a cell stored before
    they were recorded lacks one). Two sides that differ here may differ in outputs with the
    same code."""
    hardware = provenance.get("hardware") or {}
    torch_build = hardware.get("torch_build") or (provenance.get("versions") or {}).get("torch")
    cuda = f", CUDA {hardware['cuda_build']}" if hardware.get("cuda_build") else ""
    return (
        f"{hardware.get('cpu_model') or 'unknown CPU'} ({hardware.get('cpu_capability') or '?'}), "
        f"{hardware.get('gpu') or 'no GPU'}, {hardware.get('torch_threads', '?')} threads, "
        f"torch {torch_build or '?'}{cuda}"
    )


def _fingerprints(cells: list[CellResults]) -> list[str]:
    return sorted({fingerprint(cell.provenance) for cell in cells})


def compare_methods(source: ResultsSource, metrics: Sequence[str] = ()) -> list[ComparisonReport]:
    """The benchmark's own question: each pair of the source's methods (by label, in the
    source's order, the later one the candidate), on the cells they share (task, model, training
    size, sample and seed), with `compare_sources`' statistics: a paired bootstrap over test
    inputs for one seed, over seeds and inputs where several pair up. No tolerance: a verdict
    here says better, same or worse, never regression."""
    methods: dict[str, list[CellResults]] = {}
    for cell in source.cells:
        anonymous = replace(cell, config={**cell.config, "method": "", "settings": {}})
        methods.setdefault(cell.config["label"], []).append(anonymous)
    reports = []
    for first, second in itertools.combinations(methods, 2):
        try:
            baseline = ResultsSource(first, methods[first])
            report = compare_sources(baseline, ResultsSource(second, methods[second]), metrics)
        except UserError:  # no cell in common (other tasks or training sizes): not a pair
            continue
        report.rows = [replace(row, regression=False) for row in report.rows]
        reports.append(report)
    if not reports:
        raise UserError(
            f"{source.name}: no two methods share a cell (the same task, model, training size, "
            "sample and seed); run them on the same tasks and seeds"
        )
    return reports


def _by_key(source: ResultsSource) -> dict[CellKey, CellResults]:
    cells: dict[CellKey, CellResults] = {}
    for cell in source.cells:
        other = cells.setdefault(cell.key, cell)
        if other is not cell:
            raise UserError(
                f"{source.name} has two cells for {cell.config['task']} / {cell.describe()} "
                f"({other.id}, {cell.id}: their training or decoding settings differ); "
                "pass --grid to pick one grid's cells, or export one grid"
            )
    return cells


def _suites(tasks: set[str]) -> dict[str, str]:
    from bench.spec.registry import TASKS

    unknown = sorted(tasks - set(TASKS.names()))
    if unknown:
        raise UserError(
            f"unknown task {unknown[0]!r} in the results; registered: {', '.join(TASKS.names())}"
        )
    return {task: TASKS.get(task)().suite for task in tasks}


def _check_metrics(metrics: Sequence[str], suites: dict[str, str]) -> None:
    from bench.metrics.suites import SUITES

    valid = list(dict.fromkeys(m for s in suites.values() for m in SUITES.get(s).names()))
    unknown = [m for m in metrics if m not in valid]
    if unknown:
        raise UserError(
            f"unknown metric {unknown[0]!r} for these results; their metrics: {', '.join(valid)}"
        )


def _missing(cell: CellResults, reason: str) -> NotCompared:
    return NotCompared(cell.config["task"], cell.describe(), None, reason)


def _compare_split(
    report: ComparisonReport,
    pairs: list[Pair],
    split: str,
    suite: str,
    metrics: Sequence[str],
) -> None:
    """One row per metric for this split of an experiment: seed by seed when one seed pairs up,
    else over the seeds (pairs hold the baseline's and the candidate's cell of each seed)."""
    from bench.metrics.suites import SUITES, compare_suite, paper_factor

    base, cand = pairs[0]
    task, seeds = cand.config["task"], [cell.key.seed for _, cell in pairs]
    if len(pairs) == 1:
        a, b = cand.outputs[split], base.outputs[split]
        single = compare_suite(suite, a.predictions, b.predictions, a.references)
        comparisons = {name: (c, [c.delta]) for name, c in single.items()}
        label = cand.describe()
    else:
        comparisons = _seed_comparisons(suite, pairs, split)
        label = cand.describe(seeds)
    tag = next(iter(cand.scores[split].values())).tag
    for metric in list(metrics) or SUITES.get(suite).names():
        if metric not in comparisons:
            report.not_compared.append(
                NotCompared(task, label, split, f"{metric} unavailable (see `bench score`)")
            )
            continue
        (c, seed_deltas), factor = comparisons[metric], paper_factor(suite, metric)
        report.rows.append(
            MetricComparison(
                task=task,
                cell=label,
                split=split,
                ood=tag == "OOD",
                metric=metric,
                baseline=_stored([b for b, _ in pairs], split, metric, factor),
                candidate=_stored([a for _, a in pairs], split, metric, factor),
                delta=c.delta * factor,
                low=c.low * factor,
                high=c.high * factor,
                p_value=c.p_value,
                verdict=c.verdict,
                regression=c.verdict == "worse" and abs(c.delta * factor) > report.tolerance,
                seeds=seeds,
                seed_deltas=[d * factor for d in seed_deltas],
                tag=tag,
            )
        )


def _seed_comparisons(
    suite_name: str, pairs: list[Pair], split: str
) -> dict[str, tuple[Comparison, list[float]]]:
    """Per metric available on every seed of both sides: the bootstrap over seeds and inputs,
    and each seed's delta (candidate minus baseline, official scale)."""
    from bench.metrics.suites import SUITES

    suite = SUITES.get(suite_name)
    stats = []
    for base, cand in pairs:
        a, b = cand.outputs[split], base.outputs[split]
        stats.append(
            (suite.stats(a.predictions, a.references), suite.stats(b.predictions, b.references))
        )
    out = {}
    for name in suite.names():
        seeds = [(a[name], b[name]) for a, b in stats]
        if not all(isinstance(x, np.ndarray) for pair in seeds for x in pair):
            continue
        metric = suite.by_name[name].metric
        deltas = [metric.aggregate(a) - metric.aggregate(b) for a, b in seeds]
        out[name] = (seed_bootstrap(metric, seeds), deltas)
    return out


def _unpairable(
    report: ComparisonReport, base: CellResults, cand: CellResults, split: str
) -> str | None:
    """Why this split of two matched cells cannot go through a paired bootstrap, if it can't."""
    if split not in base.scores:
        return f"split only in {report.candidate}"
    if split not in cand.scores:
        return f"split only in {report.baseline}"
    for cell, name in ((base, report.baseline), (cand, report.candidate)):
        if split not in cell.outputs:
            return f"no stored predictions in {name}"
    a, b = cand.outputs[split], base.outputs[split]
    if a.sources != b.sources or a.references != b.references:
        return (
            f"inputs differ ({len(b.sources)} in the baseline, {len(a.sources)} in the "
            "candidate, or other sources or references): a paired comparison needs the same"
        )
    return None


def _stored(cells: list[CellResults], split: str, metric: str, factor: float) -> float | None:
    """The stored score, or its mean over the seeds' cells; None unless every cell stores it."""
    scores = [cell.scores[split].get(metric) for cell in cells]
    if any(score is None for score in scores):
        return None
    return float(np.mean([score.value for score in scores if score is not None])) * factor


# --- rendering ------------------------------------------------------------------------------
def summary(report: ComparisonReport, gate: bool = True) -> str:
    counts = {v: sum(r.verdict == v for r in report.rows) for v in ("better", "same", "worse")}
    if not gate:
        return (
            f"{report.candidate} vs {report.baseline}: {len(report.rows)} metrics, "
            f"{counts['better']} better, {counts['same']} same, {counts['worse']} worse; "
            f"{len(report.not_compared)} not compared"
        )
    regressions = len(report.regressions)
    verdict = (
        f"[bold red]{regressions} regression{'s' * (regressions != 1)}[/]"
        if regressions
        else "[green]no regression[/]"
    )
    return (
        f"{len(report.rows)} metrics compared: {counts['better']} better, {counts['same']} same, "
        f"{counts['worse']} worse; {verdict} (tolerance {report.tolerance:g}, paper scale); "
        f"{len(report.not_compared)} not compared"
    )
