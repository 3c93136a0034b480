"""Write a grid's report from the store alone: tables (Markdown, LaTeX, HTML), figures (PNG, SVG)
and the self-contained `index.html`.

Everything is rendered into a staging folder and swapped in at the end, so a report folder is
always one whole report, never a mix of an old and a new one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.reports.frame import failure_line, results_frame
from bench.reports.layouts import tables as build_tables
from bench.reports.page import render_page
from bench.reports.plots import draw_all
from bench.reports.table import Table, to_latex, to_markdown
from bench.store import Store


def _markdown(grid: str, done: int, total: int, tables: list[Table], plots, failed) -> str:
    lines = [f"# Results: grid `{grid}`", "", f"{done} of {total} cells finished.", ""]
    for table in tables:
        lines += [f"## {table.title}", "", to_markdown(table)]
    for plot in plots:
        lines += [f"![{plot.title}]({plot.name}.png)", ""]
    if failed:
        lines += ["## Cells not finished", ""]
        lines += [f"- {failure_line(r)}" for r in failed]
        lines.append("")
    return "\n".join(lines)


def write_report(store: Store, grid: str, out_dir: Path, intervals: bool = False) -> Path:
    """Render `grid`'s report into out_dir; returns the path of its index.html."""
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    frame = results_frame(store, grid)
    runs = [dict(r) for r in store.runs(grid)]
    tables = build_tables(frame, intervals) if not frame.empty else []
    plots = draw_all(frame, store, staging)
    for table in tables:
        (staging / f"{table.name}.md").write_text(f"## {table.title}\n\n{to_markdown(table)}")
        (staging / f"{table.name}.tex").write_text(to_latex(table))
    (staging / "tables.tex").write_text(
        "% bench tables; needs \\usepackage{booktabs}\n" + "\n".join(to_latex(t) for t in tables)
    )
    done = sum(r["status"] == "done" for r in runs)
    failed = [r for r in runs if r["status"] != "done"]
    (staging / "report.md").write_text(_markdown(grid, done, len(runs), tables, plots, failed))
    page = render_page(grid, store.grid_spec(grid) or "", runs, tables, plots, staging)
    (staging / "index.html").write_text(page)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir / "index.html"
