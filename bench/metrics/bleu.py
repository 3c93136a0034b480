"""Corpus BLEU with sacrebleu (13a tokenization, exp smoothing), multi-reference with a varying
number of references per input: the mini tasks' BLEU, on sacrebleu's 0-100 scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from bench.metrics import Metric, References

if TYPE_CHECKING:
    from sacrebleu.metrics import BLEU


class SacreBleu(Metric):
    description = "corpus BLEU (sacrebleu, 13a tokenization), multi-reference, 0-100"
    scale = "0-100"

    @cached_property
    def bleu(self) -> BLEU:
        """sacrebleu's scorer, made on first use: suites are built at import."""
        from sacrebleu.metrics import BLEU

        return BLEU()

    def segment_stats(self, hypotheses: Sequence[str], references: References) -> np.ndarray:
        """sacrebleu's statistics: lengths, then matches and totals per n-gram order."""
        rows = []
        for hyp, refs in zip(hypotheses, references, strict=True):
            # One input at a time: its statistics do not depend on the other inputs.
            s = self.bleu.corpus_score([hyp], [[ref] for ref in refs])
            rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
        width = 2 + 2 * self.bleu.max_ngram_order
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)

    def from_totals(self, totals: np.ndarray, n: int) -> float:
        order = self.bleu.max_ngram_order
        counts = [int(x) for x in totals]
        return self.bleu.compute_bleu(
            correct=counts[2 : 2 + order],
            total=counts[2 + order :],
            sys_len=counts[0],
            ref_len=counts[1],
            smooth_method=self.bleu.smooth_method,
            smooth_value=self.bleu.smooth_value,
            effective_order=self.bleu.effective_order,
            max_ngram_order=order,
        ).score
