"""The report's method comparisons: each pair of the grid's methods on the cells they share,
per task, split and metric, with the delta, its 95% interval and a verdict
(`bench.results.compare.compare_methods`, the statistics of `bench compare-methods`).

A table of means names a winner per column even when one seed cannot tell the methods apart;
this section says which differences the data supports.
"""

from __future__ import annotations

import html

from bench.errors import UserError
from bench.reports.table import text_html, text_markdown
from bench.results.bundle import ResultsSource, load_source
from bench.results.compare import ComparisonReport, compare_methods
from bench.results.store import Store

HEADER = ("task", "split", "metric", "comparison", "seeds", "delta", "95% CI", "verdict")


def method_comparisons(
    source: ResultsSource | UserError,
) -> tuple[list[ComparisonReport], str | None]:
    """The grid's method comparisons (from its stored results, `grid_source`), or none and why
    (fewer than two methods on shared cells, or stored predictions that cannot be read)."""
    if isinstance(source, UserError):
        return [], str(source)
    try:
        reports = compare_methods(source)
    except UserError as error:
        return [], str(error)
    if not any(report.rows for report in reports):
        reasons = {item.reason for report in reports for item in report.not_compared}
        return [], "; ".join(sorted(reasons)) or "nothing in common"
    return reports, None


def grid_source(store: Store, grid: str) -> ResultsSource | UserError:
    """The grid's finished cells with their predictions, read once for the report's sections,
    or why they cannot be read."""
    try:
        return load_source(store.path.parent, grid)
    except UserError as error:
        return error


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
    "Candidate (the later method) minus baseline, on the paper's scale, means over the seeds; the "
    "95% interval is a t-test over seeds with the test inputs resampled (a paired bootstrap over "
    "inputs with one seed); better or worse only where it excludes 0."
)


def to_markdown(reports: list[ComparisonReport], why_none: str | None) -> str:
    if not reports:
        return f"No methods compared: {why_none}\n"
    return "\n".join([*text_markdown(HEADER, rows(reports)), "", NOTE, ""])


def to_html(reports: list[ComparisonReport], why_none: str | None) -> str:
    if not reports:
        return f"<p>No methods compared: {html.escape(why_none or '')}</p>"
    classes = ("left", "left", "left", "left", "", "", "", "left")  # names left, numbers right
    table = text_html(HEADER, rows(reports), classes)
    return f'{table}<p class="notes">{html.escape(NOTE)}</p>'
