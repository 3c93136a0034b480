"""`index.html`: the one page a reader opens. Self-contained (inline CSS, figures embedded as data
URIs), so it can be mailed or archived alone; it links the Markdown, LaTeX and SVG files beside
it. A small script on load counts images that failed to decode, marks the count on <body> and
shows a warning: the headless-browser test reads that mark, a reader sees the warning."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from bench.reports.frame import failure_line
from bench.reports.plots import Plot
from bench.reports.table import Table, to_html

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1400px; color: #222;
       padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem;
     border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; }
th, td { padding: 0.25rem 0.55rem; border-bottom: 1px solid #eee; white-space: nowrap; }
thead th { border-bottom: 1px solid #999; text-align: center; }
td { text-align: right; font-variant-numeric: tabular-nums; }
tbody th { text-align: left; font-weight: normal; }
tr.paper { color: #666; font-style: italic; background: #fafafa; }
.notes { font-size: 0.8rem; color: #555; }
.scroll { overflow-x: auto; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #444; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.warning { background: #fdd; border: 1px solid #c00; padding: 0.6rem; }
.failed { color: #a00; }
td.text { white-space: normal; text-align: left; min-width: 16rem; }
td.left { text-align: left; }
td.wrap { white-space: normal; text-align: left; overflow-wrap: anywhere; }
td.supported { color: #060; } td.contradicted { color: #a00; } td.inconclusive { color: #666; }
"""

CHECK_IMAGES = """
window.addEventListener("load", () => {
  const broken = [...document.images].filter((img) => !img.complete || img.naturalWidth === 0);
  document.body.dataset.images = String(document.images.length);
  document.body.dataset.brokenImages = String(broken.length);
  if (broken.length) {
    const note = document.createElement("p");
    note.className = "warning";
    note.textContent = broken.length + " figure(s) failed to load.";
    document.body.prepend(note);
  }
});
"""


def _image(out_dir: Path, plot: Plot) -> str:
    data = base64.b64encode((out_dir / f"{plot.name}.png").read_bytes()).decode()
    return (
        f'<figure id="fig-{plot.name}"><img alt="{html.escape(plot.title)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(plot.title)} '
        f'(<a href="{plot.name}.svg">SVG</a>, <a href="{plot.name}.png">PNG</a>)</figcaption>'
        "</figure>"
    )


def _provenance(runs: list[dict[str, Any]]) -> str:
    """What produced the numbers: every distinct value of each provenance field over cells."""
    seen: dict[str, dict[str, None]] = {}
    hashes: dict[str, str] = {}
    for run in runs:
        record = json.loads(run["provenance"] or "{}")
        hashes.update(record.pop("data_sha256", {}) or {})
        for key in ("git_sha", "checkpoint", "versions", "hardware", "data_recipe"):
            if key in record:
                value = record[key]
                text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                seen.setdefault(key, {})[text] = None
    rows = [
        f"<tr><th>{html.escape(key)}</th><td class='wrap'>"
        + "<br>".join(html.escape(v) for v in values)
        + "</td></tr>"
        for key, values in seen.items()
    ]
    rows += [
        f"<tr><th>data</th><td class='wrap'>{html.escape(path)}<br>"
        f"<code>sha256 {digest}</code></td></tr>"
        for path, digest in sorted(hashes.items())
    ]
    return "<table>" + "".join(rows) + "</table>" if rows else "<p>No provenance recorded.</p>"


def _costs(runs: list[dict[str, Any]]) -> str:
    """Seconds per phase of each finished cell: the price of each method on this hardware."""
    header = "<tr><th>cell</th><th>task</th><th>method</th><th>seed</th>"
    phases = ("setup", "train", "generate", "score")
    header += "".join(f"<th>{p} s</th>" for p in phases) + "</tr>"
    body = []
    for run in runs:
        if run["status"] != "done":
            continue
        timings = json.loads(run["timings"] or "{}")
        body.append(
            f"<tr><td class='left'><code>{run['cell']}</code></td>"
            f"<td class='left'>{html.escape(run['task'])}</td>"
            f"<td class='left'>{html.escape(run['label'])}</td><td>{run['seed']}</td>"
            + "".join(f"<td>{timings.get(p, 0.0):.1f}</td>" for p in phases)
            + "</tr>"
        )
    return f"<table><thead>{header}</thead><tbody>{''.join(body)}</tbody></table>"


def _failed(runs: list[dict[str, Any]]) -> str:
    bad = [r for r in runs if r["status"] != "done"]
    if not bad:
        return "<p>Every cell finished.</p>"
    items = [f"<li>{html.escape(failure_line(r))}</li>" for r in bad]
    return f"<ul class='failed'>{''.join(items)}</ul>"


def render_page(
    grid: str,
    spec: str,
    runs: list[dict[str, Any]],
    tables: list[Table],
    plots: list[Plot],
    out_dir: Path,
    sections: dict[str, str] | None = None,
) -> str:
    """The self-contained index.html; `sections`: the claims' and the method comparisons'
    HTML ("claims", "methods")."""
    sections = sections or {}
    done = sum(r["status"] == "done" for r in runs)
    esc = html.escape
    toc = " · ".join(
        ['<a href="#claims">claims</a>']
        + [f'<a href="#{t.name}">{esc(t.title.split(":")[0])}</a>' for t in tables]
        + ['<a href="#methods">methods compared</a>', '<a href="#figures">figures</a>']
        + ['<a href="#provenance">provenance</a>']
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>bench report: {esc(grid)}</title>",
        f"<style>{STYLE}</style><script>{CHECK_IMAGES}</script></head><body>",
        f"<h1>Results: grid <code>{esc(grid)}</code></h1>",
        f"<p>{done} of {len(runs)} cells finished. {toc}</p>",
        '<p>Also as <a href="report.md">Markdown</a> and <a href="tables.tex">LaTeX</a> '
        "(booktabs).</p>",
        '<h2 id="claims">Claims</h2>',
        sections.get("claims", ""),
    ]
    for table in tables:
        parts += [
            f"<h2>{esc(table.heading)}</h2>",
            f'<p class="notes"><a href="{table.name}.md">{table.name}.md</a> · '
            f'<a href="{table.name}.tex">{table.name}.tex</a></p>',
            f'<div class="scroll">{to_html(table)}</div>',
        ]
    parts += ['<h2 id="methods">Methods compared</h2>', sections.get("methods", "")]
    parts.append('<h2 id="figures">Figures</h2>')
    parts += [_image(out_dir, plot) for plot in plots] or ["<p>No figures for this grid.</p>"]
    parts += [
        '<h2 id="failed">Cells not finished</h2>',
        _failed(runs),
        '<h2 id="costs">Costs</h2>',
        _costs(runs),
        '<h2 id="provenance">Provenance</h2>',
        _provenance(runs),
        '<h2 id="spec">Grid spec</h2>',
        f"<pre>{esc(spec)}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
