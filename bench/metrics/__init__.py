"""Metrics as the official scorers compute them, split into per-input statistics and a reduction.

Every metric computes `segment_stats(hypotheses, references)` once: an array with one row per
input (the expensive part: tokenization, n-gram matching, a JVM). `from_totals` turns the column
sums of any subset of rows into the corpus score (cheap, pure numpy). Corpus BLEU, NIST, TER and
METEOR are functions of summed statistics; metrics that are means of segment scores (ROUGE,
CIDEr) keep one column, the segment score. So a bootstrap resample, a WebNLG seen/unseen subset
or a paired comparison never re-runs the expensive part.

Metrics are grouped into suites (`bench.metrics.suites`): a task names its suite, which fixes
the official metrics, their preprocessing and their scales.

The metrics layer may import the spec layer (the suite registry) and below; the engine, the
results and the reports score with it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

References = Sequence[Sequence[str]]


class MetricUnavailable(Exception):
    """A metric cannot run here (no Java, a missing package or model); the message is the fix.

    Suites report such a metric as unavailable, never as 0.
    """


@dataclass(frozen=True)
class MetricScore:
    """A corpus score on its official scale, with its 95% bootstrap interval (when computed).

    `unavailable` holds the reason (and fix) when the metric could not run; values are then None.
    """

    value: float | None
    low: float | None = None
    high: float | None = None
    unavailable: str | None = None

    def as_dict(self) -> dict[str, float | str | None]:
        out: dict[str, float | str | None] = {
            "value": self.value,
            "low": self.low,
            "high": self.high,
        }
        if self.unavailable is not None:
            out["unavailable"] = self.unavailable
        return out


class Metric(ABC):
    """One metric implementation. `scale` is how its official scorer prints it ("0-1", "0-100")."""

    description: str = ""
    scale: str = "0-1"
    higher_is_better: bool = True
    runs_java: bool = False  # mostly waits on JVMs: suites give it a thread of its own

    @abstractmethod
    def segment_stats(self, hypotheses: Sequence[str], references: References) -> np.ndarray:
        """Per-input sufficient statistics, shape [n_inputs, k] (float64)."""

    @abstractmethod
    def from_totals(self, totals: np.ndarray, n: int) -> float:
        """The corpus score from the column sums of `n` rows of `segment_stats`."""

    def aggregate(self, stats: np.ndarray) -> float:
        """The corpus score of these rows."""
        return self.from_totals(stats.sum(axis=0), len(stats))


class MeanMetric(Metric):
    """A metric whose corpus score is the mean of segment scores (one stats column)."""

    @abstractmethod
    def segment_scores(self, hypotheses: Sequence[str], references: References) -> list[float]:
        """One score per input, on the metric's scale."""

    def segment_stats(self, hypotheses: Sequence[str], references: References) -> np.ndarray:
        scores = self.segment_scores(hypotheses, references)
        return np.asarray(scores, dtype=np.float64).reshape(len(hypotheses), 1)

    def from_totals(self, totals: np.ndarray, n: int) -> float:
        return float(totals[0]) / n if n else 0.0
