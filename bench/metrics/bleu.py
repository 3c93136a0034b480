"""Corpus BLEU with sacrebleu, multi-reference with a varying number of references per input."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU

from bench.metrics import Metric
from bench.registry import METRICS


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    # sacrebleu takes reference *streams*; inputs with fewer references pad theirs with None.
    n_streams = max((len(refs) for refs in references), default=1)
    streams = [
        [refs[i] if i < len(refs) else None for refs in references] for i in range(n_streams)
    ]
    return BLEU().corpus_score(list(hypotheses), streams).score


METRICS.register("bleu")(
    Metric("bleu", "corpus BLEU (sacrebleu, 13a tokenization), multi-reference", corpus_bleu)
)
