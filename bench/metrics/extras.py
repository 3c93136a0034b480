"""Model-based extras (BERTScore, BLEURT), as the DART scripts run them: optional.

They need a package and model weights that the harness does not install or download (it runs
offline); where either is missing they are reported as unavailable, with what to install,
never as 0.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

from bench.metrics import MeanMetric, MetricUnavailable, References


def _require(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MetricUnavailable(f"optional: install the {package} package and its model")


class BertScore(MeanMetric):
    description = "BERTScore F1 (bert-score, roberta-large for English), best reference; optional"
    scale = "0-1"

    def segment_scores(self, hypotheses: Sequence[str], references: References) -> list[float]:
        _require("bert_score", "bert-score")
        from bert_score import BERTScorer

        try:
            scorer = BERTScorer(lang="en")
        except OSError as error:  # weights not in the local cache, and the harness is offline
            raise MetricUnavailable(
                f"optional: bert-score's model is not available ({error})"
            ) from None
        _, _, f1 = scorer.score(list(hypotheses), [list(refs) for refs in references])
        return [float(x) for x in f1]


class Bleurt(MeanMetric):
    description = "BLEURT against the first reference (checkpoint in $BLEURT_CHECKPOINT); optional"
    scale = "model"

    def segment_scores(self, hypotheses: Sequence[str], references: References) -> list[float]:
        _require("bleurt", "bleurt (google-research)")
        checkpoint = os.environ.get("BLEURT_CHECKPOINT")
        if not checkpoint or not os.path.isdir(checkpoint):
            raise MetricUnavailable("optional: set BLEURT_CHECKPOINT to a BLEURT checkpoint dir")
        from bleurt.score import BleurtScorer

        scorer = BleurtScorer(checkpoint)
        scores = scorer.score(references=[r[0] for r in references], candidates=list(hypotheses))
        return [float(x) for x in scores]
