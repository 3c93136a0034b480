"""The report's method comparisons: each pair of the grid's methods on the cells they share,
per task, split and metric, with the delta, its 95% interval and a verdict
(`bench.results.compare.compare_methods`, the statistics of `bench compare-methods`).

A table of means names a winner per column even when one seed cannot tell the methods apart;
this section says which differences the data supports.
"""

from __future__ import annotations

import html

from bench.errors import UserError
from bench.results.bundle import load_source
from bench.results.compare import ComparisonReport, compare_methods
from bench.results.store import Store

HEADER = ("task", "split", "metric", "comparison", "seeds", "delta", "95% CI", "verdict")


def method_comparisons(store: Store, grid: str) -> tuple[list[ComparisonReport], str | None]:
    """The grid's method comparisons, or none and why (fewer than two methods on shared cells,
    or stored predictions that cannot be read)."""
    try:
        reports = compare_methods(load_source(store.path.parent, grid))
    except UserError as error:
        return [], str(error)
    if not any(report.rows for report in reports):
        reasons = {item.reason for report in reports for item in report.not_compared}
        return [], "; ".join(sorted(reasons)) or "nothing in common"
    return reports, None


def rows(reports: list[ComparisonReport]) -> list[tuple[str, ...]]:
    out = []
    for report in reports:
        for row in report.rows:
            out.append((
                row.task,
                row.split + ("" if row.tag == "ID" else f" [{row.tag}]"),
                row.metric,
                f"{report.candidate} vs {report.baseline}",
                ",".join(map(str, row.seeds)),
                f"{row.delta:+.2f}",
                f"[{row.low:+.2f}, {row.high:+.2f}]",
                row.verdict,
            ))  # fmt: skip
    return out


NOTE = (
    "Candidate (the later method) minus baseline, on the paper's scale; the interval is a paired "
    "bootstrap over test inputs, over seeds and inputs where several seeds pair up; better or "
    "worse only where it excludes 0."
)


def to_markdown(reports: list[ComparisonReport], why_none: str | None) -> str:
    if not reports:
        return f"No methods compared: {why_none}\n"
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(reports)]
    return "\n".join([*lines, "", NOTE, ""])


def to_html(reports: list[ComparisonReport], why_none: str | None) -> str:
    if not reports:
        return f"<p>No methods compared: {html.escape(why_none or '')}</p>"
    head = "".join(f"<th>{h}</th>" for h in HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in r) + "</tr>"
        for r in rows(reports)
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        f'</div><p class="notes">{html.escape(NOTE)}</p>'
    )
