"""The regression gate: compare a candidate's results with a baseline's, experiment by experiment.

Cells are matched by their experiment coordinates (`bench.results.bundle.CellKey`: task, method,
settings, model, training size and sample), not by cell id, so a change to training or decoding
settings, the mini LM or a task's data still meets its baseline; the seeds of an experiment on
each side are its samples. Per matched experiment, split and metric,
`bench.metrics.significance.seed_test` gives the delta (candidate mean minus baseline mean), its
95% interval and a verdict in the metric's own direction (TER: lower is better), from the seeds'
scores and a bootstrap over the test inputs of their stored predictions; seeds pair up when both
sides ran the same ones. A **regression** is a row whose one-sided test of "worse by more than
the tolerance" is rejected after Holm's correction across every row compared, at a family-wise
2.5%: with a dozen rows, uncorrected tests would cry wolf on most runs. Deltas and tolerance are
on the paper's scale of the metric (E2E BLEU x 100), like the reports. Cells or splits that
cannot be compared are listed, never dropped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from bench.errors import UserError
from bench.metrics.significance import ALPHA, INPUTS_ONLY, regressions, seed_test
from bench.results.bundle import CellKey, CellResults, ResultsSource

ALL_SEEDS = -1  # the seed of an experiment's key: its cells of every seed
StatsCache = dict[tuple[str, str, str, tuple[str, ...]], dict[str, Any]]


@dataclass(frozen=True)
class MetricComparison:
    """One (experiment, split, metric) over the seeds of each side: scores and delta on the
    paper's scale, means over the seeds."""

    task: str
    cell: str  # the experiment's label, size and the candidate's seed (or seeds)
    split: str
    ood: bool
    metric: str
    baseline: float | None  # the stored score's mean (None: not stored, e.g. computed now only)
    candidate: float | None
    delta: float
    low: float
    high: float
    p_value: float  # two-sided, of delta != 0
    verdict: str  # better | same | worse, from the candidate's side
    regression: bool  # worse beyond the tolerance, after Holm's correction across the rows
    seeds: list[int]  # the candidate's seeds
    baseline_seeds: list[int]
    seed_scores: list[float]  # the candidate's score per seed (order of `seeds`), paper scale
    baseline_seed_scores: list[float]
    p_worse: float  # one-sided, of "worse by more than the tolerance", before correction
    p_adjusted: float  # p_worse after Holm's correction across the report's rows
    noise: str  # what the interval covers: seeds and inputs, or inputs only (one seed a side)
    paired: bool  # seed s against seed s (both sides ran the same seeds)
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
    stats: StatsCache | None = None,
) -> ComparisonReport:
    """Match the two sources' experiments and compare every shared split and metric (or
    `metrics`) over each side's seeds; `tolerance` is on the paper's scale. `stats` keeps the
    cells' per-input statistics for the next call (the same cells compared again)."""
    if not math.isfinite(tolerance) or tolerance < 0:  # NaN would make every test pass
        raise UserError(f"tolerance {tolerance} is not a finite number >= 0")
    base, cand = _by_key(baseline), _by_key(candidate)
    suites = _suites({key.task for key in (*base, *cand)})
    _check_metrics(metrics, suites)
    base_runs, cand_runs = _experiments(base), _experiments(cand)
    shared = [key for key in base_runs if key in cand_runs]
    if not shared:
        raise UserError(
            f"no experiments in common between {baseline.name} ({len(base)} cells) and "
            f"{candidate.name} ({len(cand)} cells): cells match by task, method, settings, "
            "model, n_train and sample (seeds are the samples compared)"
        )
    report = ComparisonReport(baseline.name, candidate.name, tolerance)
    report.hardware = {
        "baseline": _fingerprints([cell for key in shared for cell in base_runs[key]]),
        "candidate": _fingerprints([cell for key in shared for cell in cand_runs[key]]),
    }
    for key, cells in base_runs.items():
        if key not in cand_runs:
            report.not_compared.append(_missing(cells, f"only in {baseline.name}"))
    for key, cells in cand_runs.items():
        if key not in base_runs:
            report.not_compared.append(_missing(cells, f"only in {candidate.name}"))
    for key in shared:
        b, c = base_runs[key], cand_runs[key]
        for split in dict.fromkeys(s for cell in (*b, *c) for s in cell.scores):
            reason = _uncomparable(report, b, c, split)
            if reason:
                label = c[0].describe([cell.key.seed for cell in c])
                report.not_compared.append(NotCompared(key.task, label, split, reason))
            else:
                _compare_split(report, (b, c), split, suites[key.task], metrics, stats or {})
    decided = regressions([row.p_worse for row in report.rows])
    report.rows = [
        replace(row, p_adjusted=p, regression=flag)
        for row, (p, flag) in zip(report.rows, decided, strict=True)
    ]
    return report


def _experiments(cells: dict[CellKey, CellResults]) -> dict[CellKey, list[CellResults]]:
    """Cells grouped by experiment (their key but the seed), seeds in order."""
    out: dict[CellKey, list[CellResults]] = {}
    for key in sorted(cells, key=lambda k: k.seed):
        out.setdefault(replace(key, seed=ALL_SEEDS), []).append(cells[key])
    return out


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
    source's order, the later one the candidate), on the experiments they share (task, model,
    training size and sample), over their seeds, with `compare_sources`' statistics. No
    tolerance: a verdict here says better, same or worse, never regression."""
    methods: dict[str, list[CellResults]] = {}
    for cell in source.cells:
        anonymous = replace(cell, config={**cell.config, "method": "", "settings": {}})
        methods.setdefault(cell.config["label"], []).append(anonymous)
    reports, stats = [], {}
    for first, second in itertools.combinations(methods, 2):
        try:
            baseline, candidate = (ResultsSource(m, methods[m]) for m in (first, second))
            report = compare_sources(baseline, candidate, metrics, stats=stats)
        except UserError:  # no cell in common (other tasks or training sizes): not a pair
            continue
        report.rows = [replace(row, regression=False) for row in report.rows]
        reports.append(report)
    if not reports:
        raise UserError(
            f"{source.name}: no two methods share an experiment (the same task, model, training "
            "size and sample); run them on the same tasks"
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


def _missing(cells: list[CellResults], reason: str) -> NotCompared:
    seeds = [cell.key.seed for cell in cells]
    label = cells[0].describe(seeds if len(seeds) > 1 else ())
    return NotCompared(cells[0].config["task"], label, None, reason)


def _compare_split(
    report: ComparisonReport,
    sides: tuple[list[CellResults], list[CellResults]],
    split: str,
    suite_name: str,
    metrics: Sequence[str],
    cache: StatsCache,
) -> None:
    """One row per metric for this split of an experiment, over the seeds of each side (paired
    seed by seed where both sides ran the same seeds); Holm's correction comes after."""
    from bench.metrics.suites import SUITES, paper_factor

    suite, (base, cand) = SUITES.get(suite_name), sides
    base_seeds, cand_seeds = [c.key.seed for c in base], [c.key.seed for c in cand]
    # Seed s against seed s only where both ran on the same hardware: there a seed's two runs
    # share every float until the change under test; elsewhere they are independent draws.
    paired = base_seeds == cand_seeds and _fingerprints(base) == _fingerprints(cand)
    wanted = list(metrics) or suite.names()
    base_stats = [_stats(suite, (report.baseline, cell), split, wanted, cache) for cell in base]
    cand_stats = [_stats(suite, (report.candidate, cell), split, wanted, cache) for cell in cand]
    task, tag = cand[0].config["task"], next(iter(cand[0].scores[split].values())).tag
    label = cand[0].describe(cand_seeds if len(cand_seeds) > 1 else ())
    for metric in wanted:
        b = [stats.get(metric) for stats in base_stats]
        c = [stats.get(metric) for stats in cand_stats]
        if not all(isinstance(x, np.ndarray) for x in (*b, *c)):
            report.not_compared.append(
                NotCompared(task, label, split, f"{metric} unavailable (see `bench score`)")
            )
            continue
        factor, scorer = paper_factor(suite_name, metric), suite.by_name[metric].metric
        test = seed_test(scorer, b, c, report.tolerance / factor, paired=paired)
        report.rows.append(
            MetricComparison(
                task=task,
                cell=label,
                split=split,
                ood=tag == "OOD",
                metric=metric,
                baseline=_stored(base, split, metric, factor),
                candidate=_stored(cand, split, metric, factor),
                delta=test.delta * factor,
                low=test.low * factor,
                high=test.high * factor,
                p_value=test.p_value,
                verdict=test.verdict,
                regression=False,  # decided across the rows, by Holm's procedure
                seeds=cand_seeds,
                baseline_seeds=base_seeds,
                seed_scores=[scorer.aggregate(x) * factor for x in c],
                baseline_seed_scores=[scorer.aggregate(x) * factor for x in b],
                p_worse=test.p_worse,
                p_adjusted=test.p_worse,
                noise=test.noise,
                paired=paired,
                tag=tag,
            )
        )


def _stats(
    suite: Any, named: tuple[str, CellResults], split: str, metrics: list[str], cache: StatsCache
) -> dict[str, Any]:
    """A cell's per-input statistics, kept in `cache` by source and cell (a baseline and a
    candidate hold cells of the same id with other outputs)."""
    source, cell = named
    key = (source, cell.id, split, tuple(metrics))
    if key not in cache:
        outputs = cell.outputs[split]
        cache[key] = suite.stats(outputs.predictions, outputs.references, metrics)
    return cache[key]


def _uncomparable(
    report: ComparisonReport, base: list[CellResults], cand: list[CellResults], split: str
) -> str | None:
    """Why this split of a matched experiment cannot be tested, if it can't: every seed of both
    sides needs its stored predictions of the same inputs."""
    for cells, name, other in ((base, report.baseline, report.candidate),
                               (cand, report.candidate, report.baseline)):  # fmt: skip
        if any(split not in cell.scores for cell in cells):
            return f"split only in {other}" if all(split not in c.scores for c in cells) else (
                f"split missing from some seeds in {name}"
            )
        if any(split not in cell.outputs for cell in cells):
            return f"no stored predictions in {name}"
    first = base[0].outputs[split]
    for cell in (*base, *cand):
        outputs = cell.outputs[split]
        if outputs.sources != first.sources or outputs.references != first.references:
            return (
                f"inputs differ ({len(first.sources)} in the baseline, {len(outputs.sources)} in "
                "the candidate, or other sources or references): a paired comparison needs the same"
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
    one_seed = report.rows and all(row.noise == INPUTS_ONLY for row in report.rows)
    caution = (
        "; [yellow]one seed a side: a verdict may be training noise, run 3 seeds or more[/]"
        if one_seed
        else ""
    )
    return (
        f"{len(report.rows)} metrics compared: {counts['better']} better, {counts['same']} same, "
        f"{counts['worse']} worse; {verdict} (tolerance {report.tolerance:g}, paper scale; "
        f"Holm-corrected across the {len(report.rows)}, family-wise {ALPHA:.1%}); "
        f"{len(report.not_compared)} not compared{caution}"
    )
