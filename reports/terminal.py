"""What commands print: the terminal tables of `run`, `compare`, `score`, `params` and
`data stats`, and the rows of `export`. The CLI parses arguments and calls these; the numbers
come from the store or from the engine's result values, never computed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench.metrics import Metric
from bench.metrics.suites import SUITES
from bench.spec.registry import TASKS

if TYPE_CHECKING:  # the store and comparisons are not imported by `score`
    from bench.results.compare import ComparisonReport
    from bench.results.store import Store


def claims_summary(store: Store, grid: str, console: Console) -> None:
    """The grid's claims, one line each with its verdict, after the counts; nothing when the
    grid declares none."""
    from bench.reports.claims import claim_results, counts

    results, _ = claim_results(store, grid)
    if not results:
        return
    console.print(counts(results), highlight=False)
    style = {"supported": "green", "contradicted": "red", "inconclusive": "yellow"}
    for result in results:
        evidence = "; ".join(
            [e.describe(result.claim.metric) for e in result.evidence] + result.notes
        )
        console.print(
            f"  [{style[result.status]}]{result.status}[/] {escape(result.claim.claim)}: "
            f"{escape(evidence)}",
            highlight=False,
        )


def results_summary(store: Store, grid: str, console: Console) -> None:
    """The results matrix, one terminal table per task (a single wide matrix does not fit),
    then one line per metric some cells have no score for, with why (a blank never goes
    unexplained). A task's table wider than the console is split (`print_split`)."""
    from bench.reports.frame import missing_metrics, results_frame  # pandas: not for `score`
    from bench.reports.layouts import matrix, missing_note, task_name

    frame = results_frame(store, grid)
    notes = []
    for task, part in frame.groupby("task", sort=False):
        table = matrix(part, intervals=False)
        if table is None:
            continue
        notes.append(table.notes[-1])  # what an entry is: mean over n runs ± its interval
        prefix = task_name(task) + " "
        headers = [h.removeprefix(prefix) for h in table.flat_headers()]
        best = table.best()
        rows = [
            [Text(row.label)]
            + [
                Text(table.cell_text(i, j), style="bold" if i in best[j] else "")
                for j in range(len(headers))
            ]
            for i, row in enumerate(table.rows)
        ]
        right = set(range(1, len(headers) + 1))
        print_split(console, f"{grid}: {task}", ["method", *headers], rows, right=right)
    for note in dict.fromkeys(notes):
        console.print(note, markup=False, highlight=False)
    for missing in missing_metrics(store, grid):
        line = missing_note(missing)
        console.print(line, style="yellow", markup=False, highlight=False, soft_wrap=True)


def print_split(
    console: Console,
    title: str,
    headers: list[str],
    rows: list[list[Text]],
    keys: int = 1,
    right: set[int] = frozenset(),  # type: ignore[assignment]
    caption: str | None = None,
) -> None:
    """A table that never cuts a name or a number (80 columns in a CI log): one wider than the
    console is printed as several, each repeating the first `keys` columns (what a row is),
    with the others in order. A header may wrap at its spaces, and so may a key cell (to half
    the console; within a word only where the widest other column would not fit beside it);
    other cells never wrap. `right`: the columns aligned right (numbers)."""
    widths = [
        max([*map(len, header.split()), *(row[j].cell_len for row in rows)])
        for j, header in enumerate(headers)
    ]
    words = [
        min(max(len(word) for row in rows for word in row[j].plain.split() or [""]), width)
        for j, width in enumerate(widths[:keys])
    ]
    key_widths = widths[:keys]
    beside = max(widths[keys:], default=0) + 3  # the widest other column fits beside the keys
    for limit, floor in (
        (console.width // 2 - 3 * keys, words),  # key cells wrap at their spaces,
        (console.width - 1 - 3 * keys - beside, [4] * keys),  # and within words if need be
    ):
        while sum(key_widths) > limit:
            shrinkable = [j for j in range(keys) if key_widths[j] > max(floor[j], 4)]
            if not shrinkable:
                break
            key_widths[max(shrinkable, key=lambda j: key_widths[j])] -= 1
    first = sum(key_widths) + 3 * (keys - 1)
    parts = column_groups(first, widths[keys:], console.width)
    for number, group in enumerate(parts, 1):
        numbered = f"{title} ({number}/{len(parts)})" if len(parts) > 1 else title
        last = number == len(parts)
        out = Table(
            title=Text(numbered),
            title_justify="left",
            caption=Text(caption) if caption and last else None,
            caption_justify="left",
        )
        columns = [*range(keys), *(keys + j for j in group)]
        for j in columns:
            width = key_widths[j] if j < keys else widths[j]
            justify = "right" if j in right else "left"
            out.add_column(headers[j], justify=justify, overflow="fold", width=width)
        for row in rows:
            out.add_row(*(row[j] for j in columns))
        console.print(out)


def column_groups(first: int, widths: list[int], total: int) -> list[list[int]]:
    """Columns (by index) per table, in order, so that the first column plus each group fits
    in `total` characters (a column takes its width, two of padding and one of border)."""
    groups: list[list[int]] = [[]]
    used = 1 + first + 3
    for j, width in enumerate(widths):
        if groups[-1] and used + width + 3 > total:
            groups.append([])
            used = 1 + first + 3
        groups[-1].append(j)
        used += width + 3
    return groups


def data_stats(table: dict[str, dict[str, dict[str, Any]]], console: Console) -> None:
    """Inputs and references per task and split; absent files with the reason (one line for a
    task whose every split is absent for the same reason, which says how to get it); then the
    pools of splits selected by a rule, where the task reports them."""
    out = Table("task", "split", "inputs", "references", "note")
    for task, splits in table.items():
        reasons = {row.get("reason") for row in splits.values()}
        if len(splits) > 1 and len(reasons) == 1 and None not in reasons:
            every = f"all {len(splits)}"
            out.add_row(task, every, "-", "-", Text(f"absent: {reasons.pop()}"))
            continue
        for split, row in splits.items():
            if "inputs" in row:
                out.add_row(task, split, f"{row['inputs']:,}", f"{row['references']:,}", "")
            else:
                out.add_row(task, split, "-", "-", Text(f"absent: {row['reason']}"))
    console.print(out)
    pools = []
    for task, splits in table.items():
        rows = [(split, row["pool"]) for split, row in splits.items() if "pool" in row]
        reasons = {pool.get("reason") for _, pool in rows}
        if len(rows) > 1 and len(reasons) == 1 and None not in reasons:
            rows = [(f"all {len(rows)}", rows[0][1])]  # one line: the same reason for each
        pools += [(task, split, pool) for split, pool in rows]
    if pools:
        console.print(_pool_table(pools))


def _pool_table(pools: list[tuple[str, str, dict[str, Any]]]) -> Table:
    """Splits a rule selects: the official split each draws from, its ids, those whose topic is
    known, the pool with the split's topic, and the size drawn; partial metadata is flagged,
    as its counts are lower bounds."""
    out = Table(
        "task", "split", "from", "ids", "topic known", "pool", "size", "note",
        title="Splits selected by topic (from the split file and URL files)", title_justify="left",
    )  # fmt: skip
    for task, split, pool in pools:
        if "pool" not in pool:
            out.add_row(task, split, "-", "-", "-", "-", "-", Text(f"absent: {pool['reason']}"))
            continue
        counts = (f"{pool[key]:,}" for key in ("ids", "known", "pool", "size"))
        unknown = pool["ids"] - pool["known"]
        note = f"ids without a topic: {unknown:,}; counts are lower bounds" if unknown else ""
        out.add_row(task, split, pool["from"], *counts, note)
    return out


_VERDICT_STYLE = {"better": "green", "same": "dim", "worse": "yellow"}
_SEEDS_CAPTION = (
    "rows over seeds: means over each side's seeds (seed against seed where both ran the same); "
    "95% CI of a t-test over seeds with the test inputs resampled"
)


def comparison(report: ComparisonReport, console: Console, gate: bool = True) -> None:
    """One table per task, then what was not compared, then a one-line verdict (with `gate`, a
    regression check's; without, a method comparison's: better, same or worse). A row over
    several seeds says so in its caption: its numbers are means, its interval covers the seeds."""
    from bench.results.compare import summary  # not imported by `score`

    tasks = list(dict.fromkeys(row.task for row in report.rows))
    headers = ["cell", "split", "metric", "baseline", "candidate", "delta", "95% CI", "p",
               "verdict"]  # fmt: skip
    for task in tasks:
        over_seeds = any(len(r.seeds) > 1 for r in report.rows if r.task == task)
        rows = []
        for row in (r for r in report.rows if r.task == task):
            verdict = Text(row.verdict, style=_VERDICT_STYLE[row.verdict])
            if row.regression:
                verdict = Text("worse: regression", style="bold red")
            rows.append([
                Text(row.cell),
                Text(row.split + ("" if row.tag == "ID" else f" [{row.tag}]")),
                Text(row.metric),
                Text(_number(row.baseline)),
                Text(_number(row.candidate)),
                Text(f"{row.delta:+.2f}"),
                Text(f"[{row.low:+.2f}, {row.high:+.2f}]"),
                Text(f"{row.p_value:.3f}"),
                verdict,
            ])  # fmt: skip
        print_split(
            console,
            f"{task}: {report.candidate} vs {report.baseline} (paper scale)",
            headers,
            rows,
            keys=3,
            right=set(range(3, 8)),  # the numbers
            caption=_SEEDS_CAPTION if over_seeds else None,
        )
    for item in report.not_compared:
        where = f" {item.split}" if item.split else ""
        console.print(
            f"[yellow]not compared[/] {escape(f'{item.task} / {item.cell}{where}: {item.reason}')}",
            highlight=False,
        )
    if report.hardware_differs:
        for side, name in (("baseline", report.baseline), ("candidate", report.candidate)):
            prints = "; ".join(report.hardware[side])
            console.print(
                f"[yellow]hardware differs[/] {escape(f'{side} {name}: {prints}')}",
                highlight=False,
            )
    console.print(summary(report, gate), highlight=False)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def scores(result: dict[str, Any], console: Console) -> None:
    """A table of values on the official scales with their 95% bootstrap intervals: one split
    (`score --split`) or, one section each, every split scored from one file (`result["splits"]`).
    Under it, one line per unavailable metric with why (and the fix): the table stays narrow.
    """
    suite_name = TASKS.get(result["task"])().suite
    suite = SUITES.get(suite_name)
    splits = result.get("splits") or {result["split"]: result}
    sizes = ", ".join(f"{split}: {entry['n']} inputs" for split, entry in splits.items())
    table = Table(title=f"{result['task']} {sizes} ({suite_name} suite)", title_justify="left")
    for column in ("split", "metric", "value", "95% interval", "scale"):
        table.add_column(column, justify="left" if column in ("split", "metric") else "right")
    for split, entry in splits.items():
        for i, (name, score) in enumerate(entry["metrics"].items()):
            cells = _score_cells(suite.by_name[name].metric, score)
            last = i == len(entry["metrics"]) - 1
            table.add_row(split if i == 0 else "", name, *cells, end_section=last)
    console.print(table)
    unavailable = dict.fromkeys(
        f"{name} unavailable: {score['unavailable']}"
        for entry in splits.values()
        for name, score in entry["metrics"].items()
        if score["value"] is None
    )
    for line in unavailable:
        console.print(line, style="yellow", markup=False, highlight=False, soft_wrap=True)


def _score_cells(metric: Metric, score: dict[str, Any]) -> tuple[str, str, str]:
    """Value, interval and scale of one score as printed (the reason an unavailable one has
    is printed under the table)."""
    scale = metric.scale + ("" if metric.higher_is_better else ", lower is better")
    if score["value"] is None:
        return "unavailable", "", scale
    digits = 2 if metric.scale == "0-100" else 4
    interval = (
        f"[{score['low']:.{digits}f}, {score['high']:.{digits}f}]"
        if score["low"] is not None
        else ""
    )
    return f"{score['value']:.{digits}f}", interval, scale


def parameters(table: dict[str, Any]) -> str:
    """The table as aligned text, one method per line."""
    lines = [f"{table['model']}: {table['base']:,} base parameters", ""]
    width = max(len("method"), *(len(row["method"]) for row in table["methods"])) + 1
    header = f"{'method':<{width}}{'trained':>14}{'%':>9}{'stored':>14}{'%':>9}  settings / note"
    lines.append(header)
    for row in table["methods"]:
        shown = {**row["settings"], **row.get("derived", {})}
        settings = ", ".join(f"{k}={v}" for k, v in shown.items() if not isinstance(v, dict))
        if row["trained"] is None:
            lines.append(f"{row['method']:<{width}}{'-':>14}{'':>9}{'-':>14}{'':>9}  {row['note']}")
            continue
        note = f" ({row['note']})" if row["note"] else ""
        lines.append(
            f"{row['method']:<{width}}{row['trained']:>14,}{row['trained_pct']:>8.3f}%"
            f"{row['stored']:>14,}{row['stored_pct']:>8.3f}%  {settings}{note}"
        )
    return "\n".join(lines)
