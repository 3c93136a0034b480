"""Write a grid's report from the store alone: tables (Markdown, LaTeX, HTML), figures (PNG, SVG)
and the self-contained `index.html`.

Everything is rendered into a staging folder and swapped in at the end, so a report folder is
always one whole report, never a mix of an old and a new one. The options a report was rendered
with are kept beside it (`options.json`), so a later `bench run` renders it the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import UserError
from bench.results.store import Store
from bench.spec.settings import GRID_NAME

if TYPE_CHECKING:
    from bench.reports.table import Table

SOURCE = ".source"  # in a report folder: the fingerprint of what it was rendered from
OPTIONS = "options.json"  # in a report folder: the options it was rendered with
DEFAULTS = {"intervals": False}


def _markdown(
    grid: str, done: int, total: int, tables: list[Table], plots, failed, claims: str
) -> str:
    from bench.reports.frame import failure_line
    from bench.reports.table import to_markdown

    lines = [f"# Results: grid `{grid}`", "", f"{done} of {total} cells finished.", ""]
    lines += ["## Claims", "", claims]
    for table in tables:
        lines += [f"## {table.heading}", "", to_markdown(table)]
    for plot in plots:
        lines += [f"![{plot.title}]({plot.name}.png)", ""]
    if failed:
        lines += ["## Cells not finished", ""]
        lines += [f"- {failure_line(r)}" for r in failed]
        lines.append("")
    return "\n".join(lines)


def write_report(store: Store, grid: str, out_dir: Path, intervals: bool | None = None) -> Path:
    """Render `grid`'s report into out_dir; returns the path of its index.html. An option left
    None is the one the report in out_dir was rendered with (`report_options`).

    It is rendered in a staging folder of its own beside out_dir and swapped in, so a report
    folder is always whole, and two runners writing the same report never share a folder. A
    grid name that is not an identifier (a store written before names were checked) is refused:
    nothing outside the report's own folders is ever deleted."""
    if not GRID_NAME.fullmatch(grid):
        raise UserError(f"grid name {grid!r} is not an identifier; rename the grid and rerun it")
    options = report_options(out_dir, intervals=intervals)
    intervals = options["intervals"]
    source = report_source(store, grid, intervals)
    marker = out_dir / SOURCE
    if (out_dir / "index.html").is_file() and marker.is_file() and marker.read_text() == source:
        return out_dir / "index.html"  # rendered from exactly this: a rerun costs nothing
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{grid}.partial-"))
    try:
        _render(store, grid, staging, intervals)
        (staging / OPTIONS).write_text(json.dumps(options, indent=1) + "\n")
        (staging / SOURCE).write_text(source)
        _swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "index.html"


def report_options(out_dir: Path, **chosen: bool | None) -> dict[str, bool]:
    """The options to render with: those chosen (not None), else those the report in out_dir
    was rendered with, else the defaults."""
    path = out_dir / OPTIONS
    kept = {}
    if any(chosen.get(key) is None for key in DEFAULTS) and path.is_file():
        try:
            kept = json.loads(path.read_text())
        except ValueError:
            kept = None
        if not isinstance(kept, dict):
            fix = "delete it, or choose every option: bench report --intervals (or --no-intervals)"
            raise UserError(f"{path} is not a JSON object of report options; {fix}")
    options = {key: bool(kept.get(key, default)) for key, default in DEFAULTS.items()}
    options.update({key: value for key, value in chosen.items() if value is not None})
    return options


def report_source(store: Store, grid: str, intervals: bool) -> str:
    """What a report shows follows from this: the grid, its runs as stored (a finished or
    rerun cell changes its row), the scores, the options and the rendering code itself."""
    blob = json.dumps(
        [
            store.grid_spec(grid),
            intervals,
            store.runs(grid),
            [tuple(row) for row in store.results(grid)],
            _code(),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@cache
def _code() -> str:
    """A digest of the engine's and the reports' files (one folder when installed as a wheel,
    two in an editable install): another version of the code renders the report again."""
    (engine,) = importlib.util.find_spec("bench").submodule_search_locations  # not imported
    digest = hashlib.sha256()
    for folder in sorted({Path(engine).resolve(), Path(__file__).resolve().parent}):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def _render(store: Store, grid: str, staging: Path, intervals: bool) -> None:
    from bench.reports.claims import claim_results
    from bench.reports.claims import to_html as claims_html
    from bench.reports.claims import to_markdown as claims_markdown
    from bench.reports.frame import missing_metrics, results_frame
    from bench.reports.layouts import tables as build_tables
    from bench.reports.methods import grid_source, method_comparisons
    from bench.reports.methods import to_html as methods_html
    from bench.reports.methods import to_markdown as methods_markdown
    from bench.reports.page import render_page
    from bench.reports.plots import draw_all
    from bench.reports.table import to_latex, to_markdown

    frame = results_frame(store, grid)
    runs = store.runs(grid)
    tables = build_tables(frame, intervals, missing_metrics(store, grid)) if not frame.empty else []
    plots = draw_all(frame, store, staging)
    for table in tables:
        (staging / f"{table.name}.md").write_text(f"## {table.heading}\n\n{to_markdown(table)}")
        (staging / f"{table.name}.tex").write_text(to_latex(table))
    (staging / "tables.tex").write_text(
        "% bench tables; needs \\usepackage{booktabs}\n" + "\n".join(to_latex(t) for t in tables)
    )
    done = sum(r["status"] == "done" for r in runs)
    failed = [r for r in runs if r["status"] != "done"]
    source = grid_source(store, grid)  # predictions read once for both sections
    compared, why_none = method_comparisons(source)
    claims, why_no_claims = claim_results(store, grid, source)
    markdown = _markdown(grid, done, len(runs), tables, plots, failed,
                         claims_markdown(claims, why_no_claims))  # fmt: skip
    markdown += "\n## Methods compared\n\n" + methods_markdown(compared, why_none)
    (staging / "report.md").write_text(markdown)
    sections = {"claims": claims_html(claims, why_no_claims),
                "methods": methods_html(compared, why_none)}  # fmt: skip
    page = render_page(grid, store.grid_spec(grid) or "", runs, tables, plots, staging, sections)
    (staging / "index.html").write_text(page)


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Replace out_dir by staging; the old report goes aside first and is then removed."""
    old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
    try:
        for _ in range(3):  # another runner may swap its own report in between
            try:
                if out_dir.exists():
                    os.replace(out_dir, old / "report")
                os.replace(staging, out_dir)
                return
            except OSError:
                shutil.rmtree(old / "report", ignore_errors=True)
        raise RuntimeError(f"could not replace the report in {out_dir}")
    finally:
        shutil.rmtree(old, ignore_errors=True)
