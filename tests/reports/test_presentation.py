"""What a paper needs of the report: one number of decimals per column (the paper's for its
metrics), the paper's column order, LaTeX that compiles with LaTeX's own table numbers, entries
that say over how many seeds, figures that explain their bars with names never cut, a method's
colour the same in every report, the options a report was rendered with kept for the next run,
and terminal tables that wrap at 80 columns instead of cutting names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from io import StringIO

import pytest
from rich.console import Console

from bench.engine.record import Score
from bench.reports import plots
from bench.reports.frame import Summary, results_frame
from bench.reports.layouts import extrapolation, matrix, runs_note, table1, table2
from bench.reports.report import write_report
from bench.reports.table import Column, Row, Table, column_places, to_latex
from bench.results.compare import ComparisonReport, MetricComparison
from bench.results.store import Store
from tests.prerequisites import program
from tests.reports import test_reports
from tests.runs import bench_here, fresh_python

store = test_reports.store  # the fixture: E2E, WebNLG, low data and lengths, known scores
_cell = test_reports._cell
INTERVALS = "[low, high]: 95% bootstrap interval"  # what a table says of its brackets
DECIMALS = re.compile(r"^-?[\d,]+(?:\.(\d+))?")


def _places(text: str) -> int | None:
    """Decimals of an entry's mean as printed; None for a blank."""
    match = DECIMALS.match(text)
    return None if match is None else len(match.group(1) or "")


def test_every_column_prints_one_number_of_decimals_the_papers_for_its_metrics(store):
    frame = results_frame(store, "g")
    table = table1(frame[frame["n_train"].isna()], intervals=False)
    headers = table.flat_headers()
    for j in range(1, len(headers)):  # the parameter share has significant digits instead
        places = {_places(table.cell_text(i, j)) for i in range(len(table.rows))} - {None}
        assert len(places) == 1, (headers[j], places)
    # As Li & Liang print them: E2E and WebNLG BLEU 1 place, WebNLG TER 2 (0-1 scale).
    assert table.places(headers.index("E2E BLEU")) == 1
    assert table.places(headers.index("WebNLG TER U")) == 2
    assert table.places(headers.index("DART BLEU")) == 1
    ft = next(i for i, r in enumerate(table.rows) if r.label == "FT")
    assert table.cell_text(ft, headers.index("WebNLG BLEU S")) == "64.0"  # not "64"
    paper = next(i for i, r in enumerate(table.rows) if r.label == "FINE-TUNE")
    assert table.cell_text(paper, headers.index("WebNLG TER S")) == "0.33"
    # The share of parameters trained: two significant digits, 100% to 0.0028%.
    shares = {r.label: table.cell_text(i, 0) for i, r in enumerate(table.rows) if not r.source}
    assert (shares["FT"], shares["prefix"], shares["prefix(length=10)"]) == ("100", "7.3", "0.0028")


def test_a_column_without_the_papers_decimals_takes_one_number_for_all_its_entries():
    assert column_places([7.84, 13.0]) == 2 and column_places([13.0, 40.5]) == 1
    assert column_places([0.0028, 100.0]) == 4  # two significant digits of the smallest
    table = Table(
        "t",
        "T",
        [Column(("score",))],
        [Row("a", (Summary(7.84, None, 1, 1, None, None, None),)), Row("b", (13.0,))],
    )
    assert [table.cell_text(0, 0), table.cell_text(1, 0)] == ["7.84", "13.00"]


def test_xsum_rouge_prints_two_decimals_as_the_paper(tmp_path):
    s = Store(tmp_path / "bench.sqlite")
    _cell(s, "x", "xsum", "FT", "finetune", 0, [Score("test", False, "rouge_1", 43.8, 10)])
    s.register_grid("x", "name: x\n", ["x"])
    table = table2(results_frame(s, "x"), intervals=False)
    assert table.cell_text(0, 1) == "43.80"
    paper = next(i for i, r in enumerate(table.rows) if r.label == "PREFIX(2%)")
    assert table.cell_text(paper, 1) == "43.80"


def test_webnlg_splits_run_seen_unseen_all_whatever_order_they_were_stored_in(tmp_path):
    s = Store(tmp_path / "bench.sqlite")
    stored = [  # all, unseen, seen: not the paper's order
        Score("test", False, "bleu", 46.0, 10, mixed=True),
        Score("test_unseen", True, "bleu", 28.0, 10),
        Score("test_seen", False, "bleu", 64.0, 10),
    ]
    _cell(s, "w", "webnlg", "FT", "finetune", 0, stored)
    s.register_grid("w", "name: w\n", ["w"])
    frame = results_frame(s, "w")
    assert matrix(frame, intervals=False).flat_headers()[1:4] == [
        "WebNLG test_seen [ID] BLEU",
        "WebNLG test_unseen [OOD] BLEU",
        "WebNLG test [all] BLEU",
    ]
    assert table1(frame, intervals=False).flat_headers()[1:] == [
        "WebNLG BLEU S",
        "WebNLG BLEU U",
        "WebNLG BLEU A",
    ]
    headers = extrapolation(frame, intervals=False).flat_headers()
    assert headers.index("WebNLG ID: test_seen BLEU") < headers.index(
        "WebNLG OOD: test_unseen BLEU"
    )


def test_entries_say_over_how_many_seeds_and_one_run_has_no_plus_minus(store):
    def summary(runs: int, seeds: int) -> Summary:
        half = None if runs == 1 else 1.0
        return Summary(50.0, None if runs == 1 else 1.0, runs, seeds, half, None, None)

    assert runs_note([summary(3, 3)]) == "Mean ± 95% CI (Student t) over n=3 seeds."
    assert runs_note([summary(1, 1)]) == "One run per entry (n=1): no ± without several seeds."
    assert "n=10 runs (seeds x training sets)" in runs_note([summary(10, 2)])
    assert "95% bootstrap interval" in runs_note([summary(3, 3)], intervals=True)
    frame = results_frame(store, "g")
    table = table1(frame[frame["task"] == "webnlg"], intervals=False)  # one seed each
    assert not any("±" in table.cell_text(i, j) for i in range(2) for j in range(1, 7))
    assert "no ± without several seeds" in table.notes[-1]


def test_latex_tables_compile_and_latex_numbers_them(store, tmp_path):
    pdflatex = program(
        "pdflatex", install="apt-get install texlive-latex-base texlive-latex-recommended"
    )
    out = tmp_path / "report"
    write_report(store, "g", out)
    tables = (out / "tables.tex").read_text()
    assert not re.search(r"\\caption\{Table \d", tables)  # LaTeX prints "Table N:" itself
    frame = results_frame(store, "g")
    tex = to_latex(table1(frame[frame["n_train"].isna()], intervals=False))
    assert "\\caption{Table-to-text generation, as Li \\& Liang 2021, Table 1. " in tex
    doc = tmp_path / "doc.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        f"\\listoftables\n\\input{{{out / 'tables.tex'}}}\n\\end{{document}}\n"
    )
    for _ in range(2):  # the second pass reads the list of tables back
        done = subprocess.run(
            [pdflatex, "-interaction=nonstopmode", "-halt-on-error", doc.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-3000:]
    listed = (tmp_path / "doc.lot").read_text()
    captions = re.findall(r"\\numberline \{(\d+)\}\{\\ignorespaces ([^.]*)", listed)
    assert captions[0] == ("1", "Table-to-text generation, as Li \\& Liang 2021, Table 1")
    assert len(captions) == 5 and not any(re.match(r"Table \d", c) for _, c in captions)
    assert (tmp_path / "doc.pdf").stat().st_size > 10_000


def _figures(monkeypatch) -> dict:
    """Figures as drawn, by name, instead of saved."""
    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda fig, out_dir, name: drawn.setdefault(name, fig))
    return drawn


def test_id_vs_ood_explains_its_bars_draws_y_equals_x_and_keeps_method_colours(
    store, tmp_path, monkeypatch
):
    drawn = _figures(monkeypatch)
    frame = results_frame(store, "g")
    assert plots.id_vs_ood(frame, tmp_path)
    ax = drawn["id_vs_ood"].axes[0]
    legend = ax.get_legend()
    assert "± std over seeds" in legend.get_title().get_text()
    assert "95% bootstrap CI" in legend.get_title().get_text()
    labels = [t.get_text() for t in legend.get_texts()]
    assert "y = x (OOD as good as ID)" in labels and {"FT", "prefix"} <= set(labels)
    diagonal = next(line for line in ax.get_lines() if line.get_label().startswith("y = x"))
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())
    colours = {c.get_label(): c.lines[0].get_color() for c in ax.containers}
    assert colours == {
        "FT": plots.method_colour("finetune"),
        "prefix": plots.method_colour("prefix"),
    }
    # Another grid listing its methods the other way round: the same colours.
    drawn.clear()
    assert plots.id_vs_ood(frame.iloc[::-1], tmp_path)
    again = {c.get_label(): c.lines[0].get_color() for c in drawn["id_vs_ood"].axes[0].containers}
    assert again == colours


def test_a_methods_colour_is_its_own_in_every_report_and_process():
    assert plots.method_colour("finetune") == "#1f77b4"  # the paper's FT blue
    assert plots.method_colour("prefix") == "#ff7f0e"  # and its prefix-tuning orange
    code = "from bench.reports.plots import method_colour; print(method_colour('peft-vera'))"
    assert fresh_python(code).strip() == plots.method_colour("peft-vera")  # not hash()-seeded
    assert plots.method_colour("peft-vera") in plots.OTHER_COLOURS


def test_log_axes_label_several_ticks_as_plain_numbers(store, tmp_path, monkeypatch):
    assert plots.log_ticks(3e5, 2.2e6) == [3e5, 5e5, 7e5, 1e6, 2e6]
    assert plots.log_ticks(1.5, 3.0) == [2.0, 3.0]
    assert len(plots.log_ticks(1.05, 9.5)) >= 3
    assert [plots._plain(v) for v in (5e5, 1e6, 2.5e7, 3.0, 0.5)] == [
        "500k",
        "1M",
        "25M",
        "3",
        "0.5",
    ]
    drawn = _figures(monkeypatch)
    frame = results_frame(store, "g")
    assert plots.score_vs_params(frame, tmp_path) and plots.loss_curves(frame, store, tmp_path)
    for fig, axis in (
        (drawn["score_vs_params"], lambda ax: ax.xaxis),
        (drawn["loss_curves"], lambda ax: ax.yaxis),
    ):
        fig.canvas.draw()
        for ax in fig.axes:
            low, high = sorted(axis(ax).get_view_interval())
            shown = [
                t.get_text()
                for t in axis(ax).get_majorticklabels()
                if t.get_text() and low <= t.get_position()[axis(ax) is ax.yaxis] <= high
            ]
            assert len(shown) >= 2, shown
            assert not any("10^" in label or "$" in label for label in shown)


def test_point_names_stay_inside_the_figure(store, tmp_path, monkeypatch):
    """The rightmost point's name is written to its left: nothing runs off the axes' right
    edge, and the figure is saved with all it draws (bbox_inches='tight')."""
    drawn = _figures(monkeypatch)
    frame = results_frame(store, "g")
    long = frame.assign(row=frame["row"].str.replace("FT", "a full fine-tuning run", regex=False))
    assert plots.score_vs_params(long, tmp_path)
    fig = drawn["score_vs_params"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        right = ax.get_window_extent(renderer).x1
        names = [t for t in ax.texts if t.get_text()]
        assert names and all(t.get_window_extent(renderer).x1 <= right + 1 for t in names)


def test_the_options_a_report_was_rendered_with_are_kept_for_the_next_run(
    reference, tmp_path, monkeypatch, capsys
):
    grid, results = reference
    copy = tmp_path / "r"
    shutil.copytree(results, copy)
    db = (copy / "bench.sqlite").read_bytes()
    folder = copy / "reports" / "tiny"
    code, _, err = bench_here(
        monkeypatch, capsys, "report", "--results-dir", str(copy), "--intervals"
    )
    assert code == 0, err
    assert json.loads((folder / "options.json").read_text()) == {"intervals": True}
    assert INTERVALS in (folder / "report.md").read_text()
    assert (copy / "bench.sqlite").read_bytes() == db  # report never writes the store
    code, _, err = bench_here(
        monkeypatch, capsys, "run", "--grid", str(grid), "--results-dir", str(copy)
    )
    assert code == 0, err
    assert INTERVALS in (folder / "report.md").read_text()  # still there
    code, _, err = bench_here(monkeypatch, capsys, "report", "--results-dir", str(copy))
    assert code == 0 and INTERVALS in (folder / "report.md").read_text()
    code, _, err = bench_here(
        monkeypatch, capsys, "report", "--results-dir", str(copy), "--no-intervals"
    )
    assert code == 0 and INTERVALS not in (folder / "report.md").read_text()
    assert json.loads((folder / "options.json").read_text()) == {"intervals": False}
    (folder / "options.json").write_text("{not json")
    code, _, err = bench_here(monkeypatch, capsys, "report", "--results-dir", str(copy))
    assert code == 2 and "options.json is not a JSON object" in err and "Traceback" not in err
    code, _, err = bench_here(
        monkeypatch, capsys, "report", "--results-dir", str(copy), "--intervals"
    )
    assert code == 0, err  # choosing every option needs nothing kept


def _row(cell: str, split: str, metric: str, tag: str = "ID") -> MetricComparison:
    return MetricComparison(
        task="webnlg",
        cell=cell,
        split=split,
        ood=tag == "OOD",
        metric=metric,
        baseline=64.21,
        candidate=46.79,
        delta=-17.42,
        low=-19.66,
        high=-15.05,
        p_value=0.0001,
        verdict="worse",
        regression=True,
        seeds=[0, 1, 2],
        baseline_seeds=[0, 1, 2],
        seed_scores=[46.0, 47.0, 47.4],
        baseline_seed_scores=[64.0, 64.2, 64.4],
        p_worse=0.0001,
        p_adjusted=0.0003,
        noise="seeds and inputs",
        paired=True,
        tag=tag,
    )


@pytest.mark.parametrize("width", [80, 60])
def test_compare_tables_wrap_at_the_console_width_and_cut_nothing(width):
    from bench.reports import terminal

    report = ComparisonReport("baseline-results-dir", "candidate-results-dir", 0.0)
    report.rows = [
        _row("prefix(length=10, mlp_hidden=512) seeds 0,1,2", "test_unseen", "meteor", "OOD"),
        _row("finetune seeds 0,1,2", "test_seen", "bleu"),
    ]
    out = StringIO()
    terminal.comparison(report, Console(file=out, width=width, color_system=None))
    text = out.getvalue()
    assert "…" not in text and all(len(line) <= width for line in text.splitlines())
    for whole in ("[-19.66, -15.05]", "worse: regression", "64.21", "46.79", "-17.42", "0.000"):
        assert whole in text
    parts = int(re.search(r"\(1/(\d)\)", text).group(1))  # split, each with the row's keys
    assert text.count("test_unseen") == text.count("meteor") == parts
    if width == 80:  # room for the cell's words whole, not at 60
        for word in ("prefix(length=10,", "mlp_hidden=512)", "seeds", "0,1,2"):
            assert re.search(rf"(?<!\S){re.escape(word)}(?!\S)", text), word
