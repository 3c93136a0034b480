"""A grid's claims (`bench.spec.claims`), evaluated on its stored results.

Each claim compares its method with each `than` method on each of its splits, with the statistics
of the regression gate (`bench.results.compare`): the difference of the means over the runs,
a 95% interval from a t-test over runs with the test inputs resampled, in the metric's better
direction (for TER, "above" is fewer errors). A run is a seed of one
training subset: low-data cells of several subsets (`samples`) are runs of the same experiment,
as the paper averages over them. Per comparison, with difference d, interval [lo, hi], margin m:

- above: supported when lo > m, contradicted when hi < m;
- below: supported when hi < -m, contradicted when lo > -m;
- within: supported when -m < lo and hi < m, contradicted when lo > m or hi < -m;
- at_least: supported when lo > -m, contradicted when hi < -m;
- otherwise inconclusive; always inconclusive with one run a side (training noise unknown).

A claim is supported when every comparison is, contradicted when any is (or when the method
stores more than `max_stored_share` of the base model's parameters per task), else
inconclusive. Each interval is at 95% on its own: a claim with several comparisons is held to a
stricter standard overall, never a looser one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bench.errors import UserError
from bench.results.bundle import CellResults, ResultsSource
from bench.spec.claims import Claim
from bench.spec.grid import claim_label
from bench.spec.settings import GridSpec
from bench.spec.strict_yaml import load_yaml

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"


@dataclass(frozen=True)
class Evidence:
    """One comparison of a claim: its method minus one `than` method on one split."""

    than: str
    split: str
    status: str
    delta: float | None = None  # paper scale
    low: float | None = None
    high: float | None = None
    runs: tuple[int, int] = (0, 0)  # the method's, the other's
    note: str = ""

    def describe(self, metric: str) -> str:
        if self.delta is None:
            return f"{self.split} vs {self.than}: {self.note}"
        note = f"; {self.note}" if self.note else ""
        return (
            f"{self.split} vs {self.than}: {self.delta:+.2f} {metric} "
            f"[{self.low:+.2f}, {self.high:+.2f}], {self.runs[0]} vs {self.runs[1]} runs{note}"
        )


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    status: str
    evidence: list[Evidence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def grid_claims(spec_text: str | None) -> GridSpec | None:
    """The stored grid's spec for its claims (None: no spec stored, or not a valid one now)."""
    if not spec_text:
        return None
    try:
        return GridSpec.model_validate(load_yaml(spec_text, "the stored grid"))
    except (UserError, ValueError):
        return None


def check_claim_metrics(spec: GridSpec) -> None:
    """Each claim's metric is one of its task's suite (before anything runs)."""
    from bench.metrics.suites import SUITES
    from bench.spec.registry import TASKS

    for i, claim in enumerate(spec.claims):
        names = SUITES.get(TASKS.get(claim.task)().suite).names()
        if claim.metric not in names:
            raise UserError(
                f"claims.{i}: metric {claim.metric!r} is not one of {claim.task}'s "
                f"({', '.join(names)})"
            )


def evaluate_claims(spec: GridSpec, source: ResultsSource) -> list[ClaimResult]:
    return [evaluate(spec, claim, source) for claim in spec.claims]


def evaluate(spec: GridSpec, claim: Claim, source: ResultsSource) -> ClaimResult:
    try:
        label = claim_label(spec, claim.method)
        others = [claim_label(spec, ref) for ref in claim.than]
    except UserError as error:
        return ClaimResult(claim, INCONCLUSIVE, notes=[str(error)])
    mine = _runs(source, claim, label)
    too_many, notes = _share(claim, mine)
    evidence = []
    for other in others:
        evidence += _compare(claim, label, mine, other, _runs(source, claim, other))
    statuses = {e.status for e in evidence}
    if too_many or CONTRADICTED in statuses:
        status = CONTRADICTED
    elif evidence and statuses == {SUPPORTED}:
        status = SUPPORTED
    else:
        status = INCONCLUSIVE
    return ClaimResult(claim, status, evidence, notes)


def _runs(source: ResultsSource, claim: Claim, label: str) -> list[CellResults]:
    """The label's cells on the claim's task and training size, each (sample, seed) a run of one
    experiment: the method and settings blanked, so that two methods' runs pair up."""
    runs = []
    for cell in source.cells:
        config = cell.config
        if config["label"] != label or config["task"] != claim.task:
            continue
        if config.get("n_train") != claim.n_train:
            continue
        run = config.get("sample", 0) * 2**32 + config["seed"]
        blank = {**config, "method": "", "settings": {}, "sample": 0, "seed": run}
        runs.append(replace(cell, config=blank))
    return runs


def _share(claim: Claim, cells: list[CellResults]) -> tuple[bool, list[str]]:
    """Whether the method stores more than `max_stored_share` of the base model's parameters
    per task (the papers' "0.1% of the parameters"), and a note."""
    if claim.max_stored_share is None or not cells:
        return False, []
    params: dict[str, Any] = cells[0].params
    if not params.get("total"):
        return False, ["its parameter counts are not stored"]
    share = params["stored"] / params["total"]
    note = f"stores {share:.3%} of the parameters (claimed: at most {claim.max_stored_share:.3%})"
    return share > claim.max_stored_share, [note]


def _compare(
    claim: Claim, label: str, mine: list[CellResults], other: str, theirs: list[CellResults]
) -> list[Evidence]:
    from bench.results.compare import compare_sources

    if not mine or not theirs:
        missing = label if not mine else other
        size = f" at n_train {claim.n_train}" if claim.n_train else ""
        note = f"no finished cells of {missing} on {claim.task}{size}"
        return [Evidence(other, split, INCONCLUSIVE, note=note) for split in claim.splits]
    try:
        report = compare_sources(
            ResultsSource(other, theirs), ResultsSource(label, mine), [claim.metric]
        )
    except UserError as error:
        return [Evidence(other, split, INCONCLUSIVE, note=str(error)) for split in claim.splits]
    rows = {row.split: row for row in report.rows}
    sign = 1.0 if _higher_is_better(claim) else -1.0  # TER: "above" is fewer errors
    out = []
    for split in claim.splits:
        row = rows.get(split)
        if row is None:
            out.append(Evidence(other, split, INCONCLUSIVE, note="no comparable predictions"))
            continue
        runs = (len(row.seeds), len(row.baseline_seeds))
        low, high = sorted((sign * row.low, sign * row.high))
        status, note = _status(claim, low, high), ""
        if min(runs) < 2:
            status, note = INCONCLUSIVE, "one run a side: training noise unknown"
        out.append(Evidence(other, split, status, sign * row.delta, low, high, runs, note))
    return out


def _higher_is_better(claim: Claim) -> bool:
    from bench.metrics.suites import SUITES
    from bench.spec.registry import TASKS

    suite = SUITES.get(TASKS.get(claim.task)().suite)
    return suite.by_name[claim.metric].metric.higher_is_better


def _status(claim: Claim, low: float, high: float) -> str:
    m = claim.margin
    supported, contradicted = {
        "above": (low > m, high < m),
        "below": (high < -m, low > -m),
        "within": (-m < low and high < m, low > m or high < -m),
        "at_least": (low > -m, high < -m),
    }[claim.relation]
    return SUPPORTED if supported else CONTRADICTED if contradicted else INCONCLUSIVE
