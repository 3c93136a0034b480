"""ROUGE-L F-measure with rouge-score: best reference per input, averaged over inputs."""

from __future__ import annotations

from collections.abc import Sequence

from rouge_score import rouge_scorer

from bench.metrics import Metric
from bench.registry import METRICS

_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    if not hypotheses:
        return 0.0
    total = sum(
        _SCORER.score_multi(list(refs), hyp)["rougeL"].fmeasure
        for hyp, refs in zip(hypotheses, references, strict=True)
    )
    return 100.0 * total / len(hypotheses)


METRICS.register("rouge_l")(
    Metric("rouge_l", "ROUGE-L F1 (rouge-score, stemmed), best reference per input", rouge_l)
)
