"""METEOR 1.5 (`-l en -norm`), the jar that pycocoevalcap ships: one JVM per corpus, loading only
the paraphrase pairs that the corpus can use (`bench.metrics.paraphrase`).

`-norm` makes the jar's scorer pass each line through its `Normalizer` (English, punctuation
kept), then lowercase it, before aligning. The texts go through that same `Normalizer` once
anyway (the paraphrase table is cut from its words; a test set's references are normalized once
and kept), so the jar is given those lines with `-lower`: the aligner sees the same lines, which
the jar no longer normalizes a second time (a quarter of its CPU time).

The jar's `-stdio` protocol answers `SCORE ||| ref1 ||| ref2 ||| hyp` with the sufficient
statistics of the best-scoring reference (23 numbers, see MeteorStats.java). The corpus score is
the jar's final formula applied to the summed statistics, reimplemented here so that resamples
and subsets need no JVM: English "rank" task parameters (alpha 0.85, beta 0.20, gamma 0.60,
delta 0.75) and module weights (exact 1.0, stem 0.6, synonym 0.8, paraphrase 0.6).
Like `MeteorStats.addStats`, the chunks of a segment that matches its reference perfectly in one
chunk are not summed. Empty references only ever lose to a real one, so suites drop them.
Each request is scored on its own, so a large corpus is split into consecutive parts scored by
JVMs side by side (`run_jar_parts`), their answers joined in order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.metrics import Metric, References
from bench.metrics.java import coco_file, run_jar_parts
from bench.metrics.paraphrase import corpus_table

ALPHA, BETA, GAMMA, DELTA = 0.85, 0.20, 0.60, 0.75
WEIGHTS = np.array([1.0, 0.6, 0.8, 0.6])
# Columns of the jar's statistics line.
TEST_LEN, REF_LEN, TEST_FUNC, REF_FUNC = 0, 1, 2, 3
STAGES = slice(4, 20)  # per module: test content, ref content, test function, ref function
CHUNKS, TEST_WORD_MATCHES, REF_WORD_MATCHES = 20, 21, 22
N_STATS = 23
# A JVM's start and table load cost about as much as scoring 1,000 hypothesis-reference pairs.
PAIRS_PER_JVM = 1500


def _field(text: str) -> str:
    """One field of a `|||`-separated stdio line (the jar reads one line per request)."""
    return " ".join(text.replace("|||", " ").split())


class Meteor(Metric):
    description = "METEOR 1.5 (-l en -norm), corpus score from summed statistics"
    scale = "0-1"
    runs_java = True

    def segment_stats(self, hypotheses: Sequence[str], references: References) -> np.ndarray:
        jar = coco_file("meteor", "meteor-1.5.jar")
        hyps = [_field(h) for h in hypotheses]
        refs = [[_field(r) for r in rs] for rs in references]
        with tempfile.TemporaryDirectory(prefix="bench-meteor-") as tmp:
            flat = [r for rs in refs for r in rs]
            table, normal = corpus_table([*flat, *hyps], Path(tmp), kept=len(flat))
            requests = [
                " ||| ".join(["SCORE", *(normal[r] for r in rs), normal[h]])
                for h, rs in zip(hyps, refs, strict=True)
            ]
            args = ["-Xmx2G", "-jar", jar.name, "-", "-", "-stdio", "-l", "en", "-lower"]
            # Requests per JVM: PAIRS_PER_JVM hypothesis-reference pairs' worth.
            per_part = max(1, PAIRS_PER_JVM * len(requests) // max(1, sum(map(len, refs))))
            lines = run_jar_parts([*args, "-a", str(table)], requests, jar.parent, per_part)
        stats = np.array([[float(x) for x in line.split()] for line in lines], dtype=np.float64)
        stats = stats.reshape(len(requests), N_STATS)
        stages = stats[:, STAGES].reshape(-1, 4, 4)
        perfect = (
            (stages[:, :, [0, 2]].sum(axis=(1, 2)) == stats[:, TEST_LEN])
            & (stages[:, :, [1, 3]].sum(axis=(1, 2)) == stats[:, REF_LEN])
            & (stats[:, CHUNKS] == 1)
        )
        stats[perfect, CHUNKS] = 0.0
        return stats

    def from_totals(self, totals: np.ndarray, n: int) -> float:
        stages = totals[STAGES].reshape(4, 4)  # [module, (tc, rc, tf, rf)]
        test_len, ref_len = totals[TEST_LEN], totals[REF_LEN]
        test_func, ref_func = totals[TEST_FUNC], totals[REF_FUNC]
        test_weighted_len = DELTA * (test_len - test_func) + (1 - DELTA) * test_func
        ref_weighted_len = DELTA * (ref_len - ref_func) + (1 - DELTA) * ref_func
        test_matches = WEIGHTS @ (DELTA * stages[:, 0] + (1 - DELTA) * stages[:, 2])
        ref_matches = WEIGHTS @ (DELTA * stages[:, 1] + (1 - DELTA) * stages[:, 3])
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.float64(test_matches) / test_weighted_len
            recall = np.float64(ref_matches) / ref_weighted_len
            f_mean = 1.0 / ((1 - ALPHA) / precision + ALPHA / recall)
            perfect = (
                stages[:, [0, 2]].sum() == test_len
                and stages[:, [1, 3]].sum() == ref_len
                and totals[CHUNKS] == 1
            )
            word_matches = (totals[TEST_WORD_MATCHES] + totals[REF_WORD_MATCHES]) / 2
            fragmentation = 0.0 if perfect else np.float64(totals[CHUNKS]) / word_matches
            score = f_mean * (1.0 - GAMMA * fragmentation**BETA)
        return 0.0 if np.isnan(score) else max(float(score), 0.0)
