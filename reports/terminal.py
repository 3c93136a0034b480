"""What commands print: the terminal tables of `run`, `compare`, `score`, `params` and
`data stats`, and the rows of `export`. The CLI parses arguments and calls these; the numbers
come from the store or from the engine's result values, never computed here.
"""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from bench.compare import ComparisonReport, summary
from bench.metrics.suites import SUITES
from bench.registry import TASKS
from bench.reports.frame import results_frame
from bench.reports.layouts import matrix, task_name
from bench.store import Store

EXPORT_KEYS = (
    "cell",
    "grid",
    "task",
    "split",
    "ood",
    "method",
    "settings",
    "model",
    "seed",
    "n_train",
    "metric",
    "value",
    "low",
    "high",
    "trained_params",
    "stored_params",
)


def results_summary(store: Store, grid: str, console: Console) -> None:
    """The results matrix, one terminal table per task (a single wide matrix does not fit)."""
    frame = results_frame(store, grid)
    for task, part in frame.groupby("task", sort=False):
        table = matrix(part, intervals=False)
        if table is None:
            continue
        prefix = task_name(task) + " "
        out = Table(title=f"{grid}: {task}", title_justify="left")
        out.add_column("method")
        for header in table.flat_headers():
            out.add_column(header.removeprefix(prefix), justify="right")
        best = table.best()
        for i, row in enumerate(table.rows):
            cells = [table.cell_text(i, j) for j in range(len(table.columns))]
            out.add_row(
                row.label, *(f"[bold]{c}[/]" if i in best[j] else c for j, c in enumerate(cells))
            )
        console.print(out)


def export_rows(store: Store, grid: str | None, format_: str, stream: IO[str]) -> None:
    """The results matrix, one row per (cell, split, metric), as JSON or CSV."""
    rows = [{key: row[key] for key in EXPORT_KEYS} for row in store.results(grid)]
    for row in rows:
        row["settings"] = json.loads(row["settings"])
        row["ood"] = bool(row["ood"])
    if format_ == "json":
        json.dump(rows, stream, indent=1)
        stream.write("\n")
        return
    writer = csv.DictWriter(stream, fieldnames=EXPORT_KEYS)
    writer.writeheader()
    writer.writerows({**r, "settings": json.dumps(r["settings"], sort_keys=True)} for r in rows)


def data_stats(table: dict[str, dict[str, dict[str, Any]]], console: Console) -> None:
    """Inputs and references per task and split; absent files with the reason."""
    out = Table("task", "split", "inputs", "references", "note")
    for task, splits in table.items():
        for split, row in splits.items():
            if "inputs" in row:
                out.add_row(task, split, f"{row['inputs']:,}", f"{row['references']:,}", "")
            else:
                out.add_row(task, split, "-", "-", f"absent: {row['reason']}")
    console.print(out)


_VERDICT_STYLE = {"better": "green", "same": "dim", "worse": "yellow"}


def comparison(report: ComparisonReport, console: Console) -> None:
    """One table per task, then what was not compared, then a one-line verdict."""
    tasks = list(dict.fromkeys(row.task for row in report.rows))
    for task in tasks:
        table = Table(
            title=f"{task}: {report.candidate} vs {report.baseline} (paper scale)",
            title_justify="left",
        )
        for column in ("cell", "split", "metric"):
            table.add_column(column)
        for column in ("baseline", "candidate", "delta", "95% CI", "p"):
            table.add_column(column, justify="right")
        table.add_column("verdict")
        for row in (r for r in report.rows if r.task == task):
            verdict = f"[{_VERDICT_STYLE[row.verdict]}]{row.verdict}[/]"
            if row.regression:
                verdict = "[bold red]worse: regression[/]"
            table.add_row(
                row.cell,
                row.split + (" [OOD]" if row.ood else ""),
                row.metric,
                _number(row.baseline),
                _number(row.candidate),
                f"{row.delta:+.2f}",
                f"[{row.low:+.2f}, {row.high:+.2f}]",
                f"{row.p_value:.3f}",
                verdict,
            )
        console.print(table)
    for item in report.not_compared:
        where = f" {item.split}" if item.split else ""
        console.print(
            f"[yellow]not compared[/] {item.task} / {item.cell}{where}: {item.reason}",
            highlight=False,
        )
    console.print(summary(report), highlight=False)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def scores(result: dict[str, Any], console: Console) -> None:
    """A table of values on the official scales with their 95% bootstrap intervals."""
    suite_name = TASKS.get(result["task"])().suite
    suite = SUITES.get(suite_name)
    table = Table(
        title=f"{result['task']} {result['split']}: {result['n']} inputs ({suite_name} suite)",
        title_justify="left",
    )
    for column in ("metric", "value", "95% interval", "scale"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, score in result["metrics"].items():
        metric = suite.by_name[name].metric
        scale = metric.scale + ("" if metric.higher_is_better else ", lower is better")
        if score["value"] is None:
            table.add_row(name, "unavailable", score["unavailable"], scale)
            continue
        digits = 2 if metric.scale == "0-100" else 4
        interval = (
            f"[{score['low']:.{digits}f}, {score['high']:.{digits}f}]"
            if score["low"] is not None
            else ""
        )
        table.add_row(name, f"{score['value']:.{digits}f}", interval, scale)
    console.print(table)


def parameters(table: dict[str, Any]) -> str:
    """The table as aligned text, one method per line."""
    lines = [f"{table['model']}: {table['base']:,} base parameters", ""]
    header = f"{'method':<14}{'trained':>14}{'%':>9}{'stored':>14}{'%':>9}  settings / note"
    lines.append(header)
    for row in table["methods"]:
        shown = {**row["settings"], **row.get("derived", {})}
        settings = ", ".join(f"{k}={v}" for k, v in shown.items() if not isinstance(v, dict))
        if row["trained"] is None:
            lines.append(f"{row['method']:<14}{'-':>14}{'':>9}{'-':>14}{'':>9}  {row['note']}")
            continue
        note = f" ({row['note']})" if row["note"] else ""
        lines.append(
            f"{row['method']:<14}{row['trained']:>14,}{row['trained_pct']:>8.3f}%"
            f"{row['stored']:>14,}{row['stored_pct']:>8.3f}%  {settings}{note}"
        )
    return "\n".join(lines)
