"""ROUGE F-measure with Google's rouge-score (Porter stemming): best reference per input, mean
over inputs, x100. The XSum convention (ROUGE-1/2/L), and the mini tasks' ROUGE-L.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.metrics import MeanMetric, References


class RougeScore(MeanMetric):
    scale = "0-100"

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "rouge1", "rouge2" or "rougeL"
        self.description = f"{kind} F1 (rouge-score, Porter stemming), best reference, x100"

    def segment_scores(self, hypotheses: Sequence[str], references: References) -> list[float]:
        from rouge_score import rouge_scorer  # here: it imports nltk and scipy (1-2 s)

        scorer = rouge_scorer.RougeScorer([self.kind], use_stemmer=True)
        return [
            100.0 * scorer.score_multi(list(refs), hyp)[self.kind].fmeasure
            for hyp, refs in zip(hypotheses, references, strict=True)
        ]
