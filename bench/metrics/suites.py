"""Metric suites: the official metrics of a task family, with the official preprocessing.

A suite is an ordered list of metrics under their official (lower-case) names, each reading one
"view" of the data: the hypotheses and references after a named preprocessing step, computed
once per corpus (e.g. E2E's PTB tokenization, one JVM, shared by METEOR, ROUGE-L and CIDEr).
Values are on each official scorer's scale; `paper_factor` converts to the paper's tables.
Tasks name their suite (`Task.suite`); the runner and `python -m bench score` both call
`score_suite`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from bench.errors import UserError
from bench.metrics import Metric, MetricScore, MetricUnavailable, References
from bench.metrics import text as official
from bench.metrics.bleu import SacreBleu
from bench.metrics.bootstrap import (
    N_RESAMPLES,
    SEED,
    Comparison,
    interval,
    paired_bootstrap,
    resample_indices,
)
from bench.metrics.coco import CiderD, CocoRougeL, coco_view
from bench.metrics.extras import BertScore, Bleurt
from bench.metrics.meteor import Meteor
from bench.metrics.mteval import MtevalBleu, MtevalNist
from bench.metrics.multibleu import MultiBleu
from bench.metrics.rouge import RougeScore
from bench.metrics.ter import Ter
from bench.spec.registry import Registry

View = tuple[list[str], list[list[str]]]
Prepare = Callable[[Sequence[str], References], View]
Stats = np.ndarray | MetricUnavailable


@dataclass(frozen=True)
class SuiteMetric:
    name: str  # the official name, lower case
    metric: Metric
    view: str
    paper_factor: float = 1.0  # official scale -> the paper's tables (E2E BLEU 0.66 -> 66)
    paper_decimals: int | None = None  # as the paper prints it (E2E BLEU 69.7, NIST 8.81)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    views: dict[str, Prepare]
    metrics: tuple[SuiteMetric, ...]
    by_name: dict[str, SuiteMetric] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {m.name: m for m in self.metrics})

    def names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def stats(
        self, hypotheses: Sequence[str], references: References, only: Sequence[str] = ()
    ) -> dict[str, Stats]:
        """Per-input statistics of every metric (or of those named in `only`), or why it is
        unavailable.

        Views run in threads, and so does each metric that runs JVMs (`Metric.runs_java`); the
        others run one after another in one more thread. So the JVMs and the Python metrics
        overlap on separate cores, and the Python steps between a metric's JVMs (on the
        critical path) share the GIL with one busy thread, not with every other metric.
        """
        _check(hypotheses, references)
        wanted = [m for m in self.metrics if not only or m.name in only]
        java = [m for m in wanted if m.metric.runs_java]
        python = [m for m in wanted if not m.metric.runs_java]
        needed = {m.view: self.views[m.view] for m in wanted}
        with ThreadPoolExecutor(max_workers=len(needed) + len(java) + 1) as pool:
            views = {name: pool.submit(f, hypotheses, references) for name, f in needed.items()}
            jobs = {m.name: pool.submit(_metric_stats, m.metric, views[m.view]) for m in java}
            in_turn = pool.submit(_metrics_in_turn, python, views)
            done = in_turn.result() | {name: job.result() for name, job in jobs.items()}
        return {m.name: done[m.name] for m in wanted}


SUITES: Registry[Suite] = Registry("metric suite", Suite, classes=False)


def _check(hypotheses: Sequence[str], references: References) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} reference lists")
    if not hypotheses:
        raise ValueError("nothing to score: no inputs")
    for i, refs in enumerate(references):
        if not any(r.strip() for r in refs):
            raise UserError(f"input {i + 1} has no reference; every scored input needs one")


def _metrics_in_turn(
    metrics: list[SuiteMetric], views: dict[str, Future[View]]
) -> dict[str, Stats]:
    return {m.name: _metric_stats(m.metric, views[m.view]) for m in metrics}


def _metric_stats(metric: Metric, view: Future[View]) -> Stats:
    try:
        hypotheses, references = view.result()
        return metric.segment_stats(hypotheses, references)
    except MetricUnavailable as reason:
        return reason


def score_stats(
    suite: Suite,
    stats: dict[str, Stats],
    bootstrap: bool = True,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> dict[str, MetricScore]:
    """Corpus scores (and 95% intervals) from statistics, e.g. of a subset of their rows."""
    n = next((len(s) for s in stats.values() if isinstance(s, np.ndarray)), 0)
    indices = resample_indices(n, n_resamples, seed) if bootstrap and n else None
    scores = {}
    for name, rows in stats.items():
        if isinstance(rows, MetricUnavailable):
            scores[name] = MetricScore(None, unavailable=str(rows))
            continue
        metric = suite.by_name[name].metric
        low, high = interval(metric, rows, indices) if indices is not None else (None, None)
        scores[name] = MetricScore(metric.aggregate(rows), low, high)
    return scores


def score_suite(
    suite_name: str,
    hypotheses: Sequence[str],
    references: References,
    bootstrap: bool = True,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> dict[str, MetricScore]:
    """Every metric of the suite: value on the official scale, 95% bootstrap interval.

    A metric that raises `MetricUnavailable` (no Java, a crashed JVM, a missing package) is
    skipped with its reason (`MetricScore.unavailable`, collected by `missing`) and the other
    metrics are still computed; any other exception is a bug and propagates."""
    suite: Suite = SUITES.get(suite_name)
    return score_stats(suite, suite.stats(hypotheses, references), bootstrap, n_resamples, seed)


def missing(scores: dict[str, MetricScore]) -> dict[str, str]:
    """The metrics of a suite's result that could not run, each with why (and the fix)."""
    return {name: s.unavailable for name, s in scores.items() if s.unavailable is not None}


def compare_suite(
    suite_name: str,
    hypotheses_a: Sequence[str],
    hypotheses_b: Sequence[str],
    references: References,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> dict[str, Comparison]:
    """Paired bootstrap of system A against system B on the same inputs, per available metric."""
    suite: Suite = SUITES.get(suite_name)
    stats_a = suite.stats(hypotheses_a, references)
    stats_b = suite.stats(hypotheses_b, references)
    return {
        name: paired_bootstrap(suite.by_name[name].metric, a, stats_b[name], n_resamples, seed)
        for name, a in stats_a.items()
        if isinstance(a, np.ndarray) and isinstance(stats_b[name], np.ndarray)
    }


def suite_metric(suite_name: str, metric: str) -> SuiteMetric | None:
    """A suite's entry for a metric (its scale and direction); None for unknown ones."""
    return SUITES.get(suite_name).by_name.get(metric) if suite_name in SUITES else None


def paper_factor(suite_name: str, metric: str) -> float:
    """How the paper's tables scale this metric (1 for unknown suites or metrics)."""
    entry = suite_metric(suite_name, metric)
    return entry.paper_factor if entry else 1.0


# --- views ----------------------------------------------------------------------------------
def _raw(hypotheses: Sequence[str], references: References) -> View:
    return list(hypotheses), [list(refs) for refs in references]


def _e2e(hypotheses: Sequence[str], references: References) -> View:
    return (
        [official.e2e_output(h) for h in hypotheses],
        [[official.e2e_reference(r) for r in refs] for refs in references],
    )


def _e2e_coco(hypotheses: Sequence[str], references: References) -> View:
    return coco_view(*_e2e(hypotheses, references))


WEBNLG_MAX_REFS = 3  # the challenge scripts score BLEU, METEOR and TER against 3 references
DART_MAX_REFS = 3  # the three official reference files


def _webnlg(hypotheses: Sequence[str], references: References) -> View:
    return (
        [official.webnlg_hypothesis(h) for h in hypotheses],
        [[official.webnlg_reference(r) for r in refs[:WEBNLG_MAX_REFS]] for refs in references],
    )


def _dart(hypotheses: Sequence[str], references: References) -> View:
    refs = [[official.dart_text(r) for r in rs if r.strip()][:DART_MAX_REFS] for rs in references]
    return [official.dart_text(h) for h in hypotheses], refs


# --- the suites -----------------------------------------------------------------------------
def register_suite(suite: Suite) -> Suite:
    """Register a metric suite under its name (a plugin's suite too); returns it."""
    return SUITES.register(suite.name)(suite)


register_suite(
    Suite(
        "e2e",
        "E2E NLG Challenge scorer (e2e-metrics measure_scores.py): mteval-v13a BLEU and NIST, "
        "coco-caption METEOR 1.5, ROUGE-L and CIDEr-D",
        {"mteval": _e2e, "coco": _e2e_coco},
        (
            SuiteMetric("bleu", MtevalBleu(), "mteval", 100.0, paper_decimals=1),
            SuiteMetric("nist", MtevalNist(), "mteval", paper_decimals=2),
            SuiteMetric("meteor", Meteor(), "coco", 100.0, paper_decimals=1),
            SuiteMetric("rouge_l", CocoRougeL(), "coco", 100.0, paper_decimals=1),
            SuiteMetric("cider", CiderD(), "coco", paper_decimals=2),
        ),
    )
)
register_suite(
    Suite(
        "webnlg",
        "WebNLG 2017 challenge evaluation (as the DART repo runs it): multi-bleu -lc, "
        "METEOR 1.5 and tercom TER against 3 references, after lowercase/unidecode/tokenize",
        {"webnlg": _webnlg},
        (
            SuiteMetric(
                "bleu",
                MultiBleu(lowercase=True, pad_to=WEBNLG_MAX_REFS),
                "webnlg",
                paper_decimals=1,
            ),
            SuiteMetric("meteor", Meteor(), "webnlg", paper_decimals=2),
            SuiteMetric("ter", Ter(), "webnlg", paper_decimals=2),
        ),
    )
)
register_suite(
    Suite(
        "dart",
        "DART evaluation (run_eval_on_dart.sh): multi-bleu, METEOR 1.5 and tercom TER against "
        "the 3 reference files, outputs lowercased and tokenized like them; optional extras",
        {"dart": _dart},
        (
            SuiteMetric(
                "bleu", MultiBleu(lowercase=False, pad_to=DART_MAX_REFS), "dart", paper_decimals=1
            ),
            SuiteMetric("meteor", Meteor(), "dart", paper_decimals=2),
            SuiteMetric("ter", Ter(), "dart", paper_decimals=2),
            SuiteMetric("bertscore", BertScore(), "dart", paper_decimals=2),
            SuiteMetric("bleurt", Bleurt(), "dart", paper_decimals=2),
        ),
    )
)
register_suite(
    Suite(
        "xsum",
        "XSum: ROUGE-1/2/L F1 with Porter stemming (rouge-score), x100",
        {"raw": _raw},
        (
            SuiteMetric("rouge_1", RougeScore("rouge1"), "raw", paper_decimals=2),
            SuiteMetric("rouge_2", RougeScore("rouge2"), "raw", paper_decimals=2),
            SuiteMetric("rouge_l", RougeScore("rougeL"), "raw", paper_decimals=2),
        ),
    )
)
register_suite(
    Suite(
        "mini",
        "the mini tasks: sacrebleu BLEU and rouge-score ROUGE-L (both 0-100)",
        {"raw": _raw},
        (
            SuiteMetric("bleu", SacreBleu(), "raw", paper_decimals=1),
            SuiteMetric("rouge_l", RougeScore("rougeL"), "raw", paper_decimals=1),
        ),
    )
)
