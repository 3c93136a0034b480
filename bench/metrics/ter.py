"""TER as tercom 0.7.25 computes it with its defaults, on sacrebleu's port of tercom.

tercom defaults: case-insensitive, punctuation kept, no normalization (the WebNLG and DART scripts
pass no options). Per input, the fewest edits over its references and the mean reference length;
corpus TER = total edits / total mean reference length (0-1, lower is better). sacrebleu's
tokenizer is used as it is; the edit count runs compiled (`bench.metrics.tercom`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.metrics import Metric, References


def edits(hyp: list[str], ref: list[str]) -> int:
    """tercom's edit count of a hypothesis against one reference: greedy shifts, each counting
    one edit, while they lower the distance (at most 1,000 candidates), then the distance."""
    from bench.metrics.tercom import edit_count, encode

    ids: dict[str, int] = {}
    return int(edit_count(encode(hyp, ids), encode(ref, ids)))


class Ter(Metric):
    description = "TER as tercom 0.7.25 (defaults: case-insensitive, punctuation kept), 0-1"
    scale = "0-1"
    higher_is_better = False

    def segment_stats(self, hypotheses: Sequence[str], references: References) -> np.ndarray:
        """Columns: fewest edits over the references, mean reference length (in words)."""
        from sacrebleu.tokenizers.tokenizer_ter import TercomTokenizer

        from bench.metrics.tercom import edit_count, encode

        tokenize = TercomTokenizer(normalized=False, no_punct=False, case_sensitive=False)
        ids: dict[str, int] = {}
        rows = []
        for hyp, refs in zip(hypotheses, references, strict=True):
            words = encode(tokenize(hyp.rstrip()).split(), ids)
            ref_words = [encode(tokenize(r.rstrip()).split(), ids) for r in refs]
            rows.append(
                [min(edit_count(words, r) for r in ref_words), sum(map(len, ref_words)) / len(refs)]
            )
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2)

    def from_totals(self, totals: np.ndarray, n: int) -> float:
        edit_count, ref_len = float(totals[0]), float(totals[1])
        if ref_len > 0:
            return edit_count / ref_len
        return 1.0 if edit_count > 0 else 0.0  # tercom's convention for empty references
