"""The report's first section: the grid's claims (`claims:` in its spec), each supported,
contradicted or inconclusive on the stored results, with its evidence
(`bench.results.claims`)."""

from __future__ import annotations

import html

from bench.errors import UserError
from bench.reports.table import text_html, text_markdown
from bench.results.bundle import ResultsSource
from bench.results.claims import ClaimResult, evaluate_claims, grid_claims
from bench.results.store import Store

NOTE = (
    "Each comparison: the claim's method minus the other, on the paper's scale, means over runs "
    "(seeds, and training subsets in low data); 95% interval of a t-test over runs with the test "
    "inputs resampled. Supported when every interval lies where the claim says, contradicted "
    "when one lies on the other side, else inconclusive (always with one run a side)."
)
HEADER = ("claim", "verdict", "evidence")


def claim_results(
    store: Store, grid: str, source: ResultsSource | UserError | None = None
) -> tuple[list[ClaimResult], str | None]:
    """The grid's claims evaluated on `source` (its stored results, read here if not given),
    or none and why."""
    from bench.reports.methods import grid_source

    spec = grid_claims(store.grid_spec(grid))
    if spec is None or not spec.claims:
        return [], "the grid declares no claims (`claims:` in its YAML)"
    source = grid_source(store, grid) if source is None else source
    if isinstance(source, UserError):
        return [], str(source)
    return evaluate_claims(spec, source), None


def rows(results: list[ClaimResult]) -> list[tuple[str, str, str]]:
    out = []
    for result in results:
        claim = result.claim
        evidence = [e.describe(claim.metric) for e in result.evidence] + result.notes
        out.append((f"{claim.claim} ({claim.statement()})", result.status, "; ".join(evidence)))
    return out


def counts(results: list[ClaimResult]) -> str:
    found = [r.status for r in results]
    parts = [f"{found.count(s)} {s}" for s in ("supported", "contradicted", "inconclusive")]
    return f"{len(results)} claims: " + ", ".join(parts)


def to_markdown(results: list[ClaimResult], why_none: str | None) -> str:
    if not results:
        return f"No claims checked: {why_none}\n"
    return "\n".join([counts(results), "", *text_markdown(HEADER, rows(results)), "", NOTE, ""])


def to_html(results: list[ClaimResult], why_none: str | None) -> str:
    if not results:
        return f"<p>No claims checked: {html.escape(why_none or '')}</p>"
    table = text_html(HEADER, rows(results), ("text", "", "text"))
    return f'<p>{html.escape(counts(results))}</p>{table}<p class="notes">{html.escape(NOTE)}</p>'
