"""A paper-style table and its three renderings: Markdown, LaTeX (booktabs) and HTML.

A table is built once from the store (see `layouts`) and rendered three ways, so the versions
never disagree. Columns carry header groups (E2E / BLEU, WebNLG / TER / U), the metric's
direction and one number of decimals for the whole column (the paper's for its metrics); the
best measured value of each column is bold (the lowest for TER). Reference rows (the paper's
published numbers) are shown apart and never compete for bold.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.reports.frame import Summary


@dataclass(frozen=True)
class Column:
    header: tuple[str, ...]  # outermost group first; the last item is the column's own label
    higher_is_better: bool | None = True  # None: not ranked (e.g. the parameter share)
    decimals: int | None = None  # None: from the column's values (`column_places`)
    significant: int | None = None  # instead: this many significant digits each (shares: 0.0028)


@dataclass(frozen=True)
class Row:
    label: str
    values: tuple[Summary | float | None, ...]  # a float: a published number
    source: str | None = None  # set for reference rows: where the numbers were published


@dataclass
class Table:
    name: str  # file stem and anchor: "table1", "lowdata"
    title: str  # what it shows, without a number: LaTeX numbers its own tables
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    intervals: bool = False  # show each entry's bootstrap interval
    paper: str | None = None  # the paper's table or figure it reproduces: "Table 1"

    @property
    def heading(self) -> str:
        """The title with the paper's table it reproduces, for a section heading."""
        return f"{self.title} (as {PAPER}, {self.paper})" if self.paper else self.title

    def places(self, j: int) -> int:
        """Decimals of every entry of column j: the column's own, else from its values."""
        column = self.columns[j]
        if column.decimals is not None:
            return column.decimals
        values = [row.values[j] for row in self.rows]
        return column_places(
            [v if isinstance(v, float) else v.mean for v in values if v is not None]
        )

    def best(self) -> list[set[int]]:
        """Per column, the measured rows holding the best mean (several on a tie)."""
        winners: list[set[int]] = []
        for j, column in enumerate(self.columns):
            means = {
                i: row.values[j].mean
                for i, row in enumerate(self.rows)
                if row.source is None and isinstance(row.values[j], Summary)
            }
            if column.higher_is_better is None or len(means) < 2:
                winners.append(set())
                continue
            target = (max if column.higher_is_better else min)(means.values())
            best = {i for i, v in means.items() if math.isclose(v, target)}
            winners.append(best if len(best) < len(means) else set())  # all tied: none stands out
        return winners

    def cell_text(self, i: int, j: int) -> str:
        """The entry as printed: the mean ± its 95% interval over runs (none for one run), and
        the bootstrap interval on demand, all with the column's number of decimals."""
        value = self.rows[i].values[j]
        if value is None:
            return "–"
        mean = value if isinstance(value, float) else value.mean
        places = self.places(j)
        if self.columns[j].significant and not math.isnan(mean) and mean != 0:
            digits = self.columns[j].significant
            places = max(0, digits - 1 - math.floor(math.log10(abs(mean))))
        text = _number(mean, places)
        if isinstance(value, float):
            return text
        if value.half is not None:
            text += f" ± {_number(value.half, places)}"
        if self.intervals and value.low is not None and value.high is not None:
            text += f" [{_number(value.low, places)}, {_number(value.high, places)}]"
        return text

    def header_rows(self) -> list[list[tuple[str, int]]]:
        """Header levels top-down as (label, span) runs; a column with fewer levels leaves
        the upper ones blank, so its label sits on the bottom row."""
        depth = max(len(c.header) for c in self.columns)
        padded = [("",) * (depth - len(c.header)) + c.header for c in self.columns]
        levels = []
        for level in range(depth):
            runs: list[tuple[str, int]] = []
            for j, header in enumerate(padded):
                key = header[: level + 1]
                if runs and j > 0 and padded[j - 1][: level + 1] == key and header[level]:
                    runs[-1] = (runs[-1][0], runs[-1][1] + 1)
                else:
                    runs.append((header[level], 1))
            levels.append(runs)
        return levels

    def flat_headers(self) -> list[str]:
        return [" ".join(part for part in c.header if part) for c in self.columns]


PAPER = "Li & Liang 2021"  # arXiv:2101.00190v1, whose table numbers and values the reports use


def column_places(values: Sequence[float]) -> int:
    """Decimals for a column without the paper's: enough for its smallest value, the paper's
    habit (one decimal from 10 up, two below; two significant digits under 0.1, so a 0.0028%
    parameter share does not print as 0.00), one number for the whole column."""
    finite = [abs(v) for v in values if not math.isnan(v) and v != 0]
    if not finite:
        return 2
    smallest = min(finite)
    if smallest < 0.1:
        return 1 - math.floor(math.log10(smallest))
    return 2 if smallest < 10 else 1


def _number(value: float, places: int) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:,.0f}" if places == 0 else f"{value:.{places}f}"


def _rows_in_order(table: Table) -> list[int]:
    """Measured rows first, then the paper's reference rows."""
    measured = [i for i, r in enumerate(table.rows) if r.source is None]
    return measured + [i for i, r in enumerate(table.rows) if r.source is not None]


def to_markdown(table: Table) -> str:
    best = table.best()
    lines = [
        "| method | " + " | ".join(table.flat_headers()) + " |",
        "|---|" + "---:|" * len(table.columns),
    ]
    for i in _rows_in_order(table):
        row = table.rows[i]
        cells = []
        for j in range(len(table.columns)):
            text = table.cell_text(i, j)
            cells.append(f"**{text}**" if i in best[j] else text)
        label = f"*{row.label}* (paper)" if row.source else row.label
        lines.append(f"| {_md_escape(label)} | " + " | ".join(cells) + " |")
    lines += [""] + [f"{note}  " for note in _notes(table)]
    return "\n".join(lines).rstrip() + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _notes(table: Table) -> list[str]:
    sources = dict.fromkeys(r.source for r in table.rows if r.source)
    return [*table.notes, *(f"Paper rows: {s}." for s in sources)]


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_text(text: str) -> str:
    """Escaped, with the two non-ASCII signs the tables print as LaTeX of their own."""
    return latex_escape(text).replace("±", "$\\pm$").replace("–", "--")


def to_latex(table: Table) -> str:
    """A booktabs `table` float, ready to paste (needs \\usepackage{booktabs})."""
    best = table.best()
    title = f"{table.title}, as {PAPER}, {table.paper}" if table.paper else table.title
    caption = " ".join([title + ".", *_notes(table)])
    lines = [
        "\\begin{table*}[t]",
        "\\centering",
        "\\small",
        f"\\begin{{tabular}}{{l{'r' * len(table.columns)}}}",
        "\\toprule",
    ]
    levels = table.header_rows()
    for depth, runs in enumerate(levels):
        cells, rules, column = ["method" if depth == len(levels) - 1 else ""], [], 2
        for label, span in runs:
            text = latex_escape(label)
            cells.append(f"\\multicolumn{{{span}}}{{c}}{{{text}}}" if span > 1 else text)
            if label and depth < len(levels) - 1:
                rules.append(f"\\cmidrule(lr){{{column}-{column + span - 1}}}")
            column += span
        lines.append(" & ".join(cells) + " \\\\")
        if rules:
            lines.append(" ".join(rules))
    lines.append("\\midrule")
    measured_done = False
    for i in _rows_in_order(table):
        row = table.rows[i]
        if row.source and not measured_done:
            lines.append("\\midrule")
            measured_done = True
        cells = [latex_escape(row.label + (" (paper)" if row.source else ""))]
        for j in range(len(table.columns)):
            text = _latex_text(table.cell_text(i, j))
            cells.append(f"\\textbf{{{text}}}" if i in best[j] else text)
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    lines += [f"\\caption{{{_latex_text(caption)}}}", f"\\label{{tab:{table.name}}}"]
    lines.append("\\end{table*}")  # LaTeX numbers it: the caption has no "Table N:" of its own
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    best = table.best()
    esc = html.escape
    parts = [f'<table class="results" id="{esc(table.name)}">', "<thead>"]
    levels = table.header_rows()
    for depth, runs in enumerate(levels):
        cells = [f"<th>{'method' if depth == len(levels) - 1 else ''}</th>"]
        cells += [
            f'<th colspan="{span}">{esc(label)}</th>' if span > 1 else f"<th>{esc(label)}</th>"
            for label, span in runs
        ]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</thead><tbody>")
    for i in _rows_in_order(table):
        row = table.rows[i]
        css = ' class="paper"' if row.source else ""
        label = esc(row.label) + (" <small>(paper)</small>" if row.source else "")
        cells = [f'<th scope="row">{label}</th>']
        for j in range(len(table.columns)):
            text = esc(table.cell_text(i, j))
            cells.append(f"<td><b>{text}</b></td>" if i in best[j] else f"<td>{text}</td>")
        parts.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    notes = _notes(table)
    if notes:
        parts.append('<p class="notes">' + "<br>".join(esc(n) for n in notes) + "</p>")
    return "\n".join(parts) + "\n"


def text_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A table of text cells (method comparisons, claims) as Markdown lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]


def text_html(
    header: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()
) -> str:
    """A table of text cells as HTML, in a scrolling box; `classes`: each column's CSS class
    (a column named "verdict" also takes its cell's text, for the verdict's colour)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='{_css(classes, header, j, cell)}'>{html.escape(cell)}</td>"
            for j, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _css(classes: Sequence[str], header: Sequence[str], j: int, cell: str) -> str:
    names = [classes[j]] if j < len(classes) and classes[j] else []
    return " ".join([*names, cell] if header[j] == "verdict" else names)
