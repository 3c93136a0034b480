"""The report layer on a store filled with known scores (no training): layouts, aggregation over
seeds, direction-aware bold, the paper's reference rows, the three renderings, the figures, and
the page in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.engine.record import ParamCounts, Score
from bench.errors import UserError
from bench.reports.frame import results_frame
from bench.reports.layouts import extrapolation, lowdata, matrix, prefix_length, table1
from bench.reports.plots import pareto_front
from bench.reports.report import write_report
from bench.reports.table import Column, Row, Table, latex_escape, to_latex, to_markdown
from bench.reports.terminal import column_groups
from bench.results.store import Store
from tests.prerequisites import program

BASE = 354_823_168  # gpt2-medium


def _cell(
    store: Store,
    cell: str,
    task: str,
    label: str,
    method: str,
    seed: int,
    scores: list[Score],
    settings: dict | None = None,
    n_train: int | None = None,
    trained: int = BASE,
    status: str = "done",
) -> None:
    config = {
        "task": task,
        "method": method,
        "label": label,
        "settings": settings or {},
        "model": "random:gpt2-medium",
        "checkpoint": "random:gpt2-medium@0",
        "seed": seed,
        "n_train": n_train,
    }
    store.start_cell(cell, config)
    if status != "done":
        store.fail_cell(cell, status, "RuntimeError: loss is NaN\ntrace", {})
        return
    store.finish_cell(
        cell,
        scores,
        ParamCounts(trained=trained, stored=trained, total=BASE, stored_bytes=4 * trained),
        {"train": [(1, 3.0), (2, 2.0), (3, 1.5)], "dev": [(1, 2.5)]},
        {"train": 1.0, "generate": 2.0},
        {"git_sha": "abc123", "versions": {"torch": "2.13.0"}, "data_sha256": {"e2e/t.csv": "f0"}},
    )


def _webnlg(bleu: tuple[float, float, float], ter: tuple[float, float, float]) -> list[Score]:
    splits = [("test_seen", False, False), ("test_unseen", True, False), ("test", False, True)]
    return [
        s
        for (split, ood, mixed), b, t in zip(splits, bleu, ter, strict=True)
        for s in (
            Score(split, ood, "bleu", b, 10, mixed=mixed),
            Score(split, ood, "ter", t, 10, mixed=mixed),
        )
    ]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """E2E and WebNLG for FT and prefix over two seeds, a low-data sweep, a length sweep and a
    failed cell. E2E BLEU is stored on the official 0-1 scale, reported x100."""
    s = Store(tmp_path / "bench.sqlite")
    cells = []
    for seed, e2e_ft, e2e_prefix in ((0, 0.68, 0.70), (1, 0.66, 0.69)):
        _cell(
            s,
            f"ft-e2e-{seed}",
            "e2e",
            "FT",
            "finetune",
            seed,
            [Score("test", False, "bleu", e2e_ft, 630, 0.6, 0.7)],
        )
        _cell(
            s,
            f"px-e2e-{seed}",
            "e2e",
            "prefix",
            "prefix",
            seed,
            [Score("test", False, "bleu", e2e_prefix, 630)],
            {"length": 10},
            trained=25_750_016,
        )
        cells += [f"ft-e2e-{seed}", f"px-e2e-{seed}"]
    _cell(
        s, "ft-web", "webnlg", "FT", "finetune", 0, _webnlg((64.0, 28.0, 46.0), (0.33, 0.76, 0.53))
    )
    _cell(
        s,
        "px-web",
        "webnlg",
        "prefix",
        "prefix",
        0,
        _webnlg((63.0, 45.0, 55.0), (0.35, 0.49, 0.41)),
        {"length": 10},
        trained=25_750_016,
    )
    cells += ["ft-web", "px-web"]
    for n, value in ((50, 0.30), (100, 0.40), (200, 0.50)):
        for method, delta in (("finetune", 0.0), ("prefix", 0.05)):
            cell = f"low-{method}-{n}"
            _cell(
                s,
                cell,
                "e2e",
                method,
                method,
                0,
                [Score("test", False, "bleu", value + delta, 630)],
                n_train=n,
            )
            cells.append(cell)
    for length, value in ((1, 40.0), (5, 44.0), (10, 46.0)):
        cell = f"len-{length}"
        _cell(
            s,
            cell,
            "dart",
            f"prefix(length={length})",
            "prefix",
            0,
            [Score("test", False, "bleu", value, 50)],
            {"length": length},
            trained=1000 * length,
        )
        cells.append(cell)
    _cell(s, "broken", "e2e", "adapter", "adapter", 0, [], status="failed")
    cells.append("broken")
    s.register_grid("g", "name: g\nmodel: random:gpt2-medium\n", cells)
    return s


def test_table1_aggregates_seeds_scales_bolds_by_direction_and_adds_paper_rows(store):
    frame = results_frame(store, "g")
    table = table1(frame[frame["n_train"].isna()], intervals=False)
    assert table is not None
    headers = table.flat_headers()
    assert headers[:2] == ["% params", "E2E BLEU"]
    assert "WebNLG BLEU S" in headers and "WebNLG TER U" in headers and "WebNLG TER A" in headers
    labels = [r.label for r in table.rows]
    assert labels[:2] == ["FT", "prefix"]
    ft, prefix = table.rows[0], table.rows[1]
    e2e = headers.index("E2E BLEU")
    assert ft.values[e2e].mean == pytest.approx(67.0)  # (68 + 66) / 2, x100
    assert ft.values[e2e].std == pytest.approx(1.41421356, abs=1e-6)
    # ± the 95% interval of the mean over the 2 seeds: t(0.975, 1) = 12.706 x 1.414 / sqrt 2
    assert ft.values[e2e].half == pytest.approx(12.7062, abs=1e-4) and ft.values[e2e].runs == 2
    assert table.cell_text(0, e2e) == "67.0 ± 12.7"
    assert table.notes[-1] == (
        "Mean ± 95% CI (Student t) over n=1 to 2 seeds; an entry of one run has no ±."
    )
    assert ft.values[0] == pytest.approx(100.0) and prefix.values[0] == pytest.approx(7.257, 1e-3)
    best = table.best()
    assert best[e2e] == {1}  # prefix 69.5 beats FT 67.0
    assert best[headers.index("WebNLG TER U")] == {1}  # 0.49 < 0.76: lower is better
    assert best[headers.index("WebNLG TER S")] == {0}  # 0.33 < 0.35
    assert best[0] == set()  # the parameter share is not ranked
    # The paper's GPT-2 Medium rows (the grid runs random:gpt2-medium), never bold.
    paper = {r.label: r for r in table.rows if r.source}
    assert set(paper) == {"FINE-TUNE", "FT-TOP2", "ADAPTER(3%)", "ADAPTER(0.1%)", "PREFIX(0.1%)"}
    assert paper["PREFIX(0.1%)"].values[e2e] == 69.7
    assert "Table 1, GPT-2 Medium" in paper["FINE-TUNE"].source
    paper_rows = {i for i, r in enumerate(table.rows) if r.source}
    assert not any(column & paper_rows for column in best)
    assert [r.label for r in table.rows if not r.source][2:] == [
        "prefix(length=1)",
        "prefix(length=5)",
        "prefix(length=10)",
    ]  # the DART length sweep: Table 1's DART columns


def test_intervals_on_demand_show_the_bootstrap_interval(store):
    frame = results_frame(store, "g")
    table = table1(frame[(frame["n_train"].isna()) & (frame["task"] == "e2e")], intervals=True)
    # seed 0 has [0.6, 0.7], seed 1 none: the span of the seeds' intervals, x100.
    assert table.cell_text(0, 1) == "67.0 ± 12.7 [60.0, 70.0]"


def test_lowdata_prefix_length_and_extrapolation_layouts(store):
    frame = results_frame(store, "g")
    low = lowdata(frame, intervals=False)
    assert low.flat_headers() == [
        "E2E test BLEU n=50",
        "E2E test BLEU n=100",
        "E2E test BLEU n=200",
    ]
    assert [r.label for r in low.rows] == ["finetune", "prefix"]
    assert [v.mean for v in low.rows[1].values] == pytest.approx([35.0, 45.0, 55.0])
    assert low.best() == [{1}, {1}, {1}]

    lengths = prefix_length(frame, intervals=False)
    dart = [r for r in lengths.rows if r.values[1] is not None]
    assert [r.label for r in dart] == ["prefix length 1", "prefix length 5", "prefix length 10"]
    assert [r.values[1].mean for r in dart] == [40.0, 44.0, 46.0]

    table3 = extrapolation(frame, intervals=False)
    assert table3.flat_headers()[1:4] == [
        "WebNLG ID: test_seen BLEU",
        "WebNLG ID: test_seen TER",
        "WebNLG OOD: test_unseen BLEU",
    ]
    assert "WebNLG OOD: test_unseen TER" in table3.flat_headers()
    assert not any(": test " in f"{h} " for h in table3.flat_headers())  # `all` is neither
    # WebNLG's unseen categories are the paper's extrapolation setting too (Table 1, U).
    paper = [r for r in table3.rows if r.source]
    assert paper[0].label == "FINE-TUNE"
    unseen_bleu = table3.flat_headers().index("WebNLG OOD: test_unseen BLEU")
    assert paper[0].values[unseen_bleu] == 27.7


def test_matrix_tags_splits_and_counts_stored_parameters(store):
    frame = results_frame(store, "g")
    table = matrix(frame, intervals=False)
    headers = table.flat_headers()
    assert "WebNLG test_unseen [OOD] TER" in headers and "E2E test [ID] BLEU" in headers
    assert "WebNLG test [all] BLEU" in headers  # seen and unseen categories together
    assert headers[-1] == "stored params"
    prefix = next(i for i, r in enumerate(table.rows) if r.label == "prefix")
    assert table.cell_text(prefix, len(headers) - 1) == "25,750,016"
    assert not any(r.source for r in table.rows)  # the matrix is the grid's own results only


def test_markdown_and_latex_renderings(store):
    frame = results_frame(store, "g")
    table = table1(frame[frame["n_train"].isna()], intervals=False)
    md = to_markdown(table)
    header, rule, *body = md.splitlines()
    assert header.count("|") == rule.count("|") == len(table.columns) + 2
    assert "| **69.5 ± 6.4** |" in md  # (70 + 69) / 2, t(0.975, 1) x 0.707 / sqrt 2
    assert "*PREFIX(0.1%)* (paper)" in md
    tex = to_latex(table)
    for needle in (
        "\\toprule",
        "\\midrule",
        "\\bottomrule",
        "\\cmidrule(lr)",
        "\\label{tab:table1}",
    ):
        assert needle in tex
    assert "\\multicolumn{3}{c}{BLEU}" in tex  # WebNLG BLEU over S U A
    assert "\\textbf{69.5 $\\pm$ 6.4}" in tex
    assert "ADAPTER(3\\%) (paper)" in tex
    body = tex.split("\\midrule", 1)[1]
    body_rows = [line for line in body.splitlines() if line.endswith("\\\\")]
    assert len(body_rows) == len(table.rows)
    assert all(line.count(" & ") == len(table.columns) for line in body_rows)


def test_headers_span_and_escape():
    table = Table(
        "t",
        "T",
        [Column(("A", "x"), True), Column(("A", "y"), False), Column(("B",), None)],
        [Row("m_1 & co", (1.0, 2.0, 3.0))],
    )
    assert table.header_rows() == [[("A", 2), ("", 1)], [("x", 1), ("y", 1), ("B", 1)]]
    assert latex_escape("m_1 & 5%") == "m\\_1 \\& 5\\%"
    assert "m\\_1 \\& co" in to_latex(table)


def test_pareto_front_is_direction_aware():
    points = [(10.0, 50.0), (100.0, 60.0), (1000.0, 55.0), (5.0, 40.0)]
    assert pareto_front(points, higher_is_better=True) == [3, 0, 1]
    assert pareto_front([(1.0, 0.5), (2.0, 0.4), (3.0, 0.6)], higher_is_better=False) == [0, 1]


def test_write_report_writes_every_file_and_a_self_contained_page(store, tmp_path):
    out = tmp_path / "reports" / "g"
    index = write_report(store, "g", out)
    assert index == out / "index.html"
    names = {p.name for p in out.iterdir()}
    for table in ("table1", "extrapolation", "lowdata", "prefix_length", "matrix"):
        assert {f"{table}.md", f"{table}.tex"} <= names
    for figure in ("lowdata", "prefix_length", "id_vs_ood", "score_vs_params", "loss_curves"):
        assert (out / f"{figure}.png").stat().st_size > 1000
        assert (out / f"{figure}.svg").read_text().lstrip().startswith("<?xml")
    assert {"report.md", "tables.tex", "index.html"} <= names
    page = index.read_text()
    assert page.count('src="data:image/png;base64,') == 5
    assert not re.search(r'<img[^>]+src="(?!data:)', page)  # nothing fetched from outside
    assert "RuntimeError: loss is NaN" in page  # the failed cell, its reason's first line only
    assert "NaN\ntrace" not in page
    assert "abc123" in page and "e2e/t.csv" in page and "name: g" in page
    for link in ("report.md", "tables.tex", "table1.tex", "lowdata.svg"):
        assert f'href="{link}"' in page and (out / link).is_file()
    assert "15 of 16 cells finished" in (out / "report.md").read_text()
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["g"]  # no staging left


@pytest.mark.parametrize("name", ["..", "", "../other", "a/b"])
def test_a_report_never_writes_or_deletes_outside_its_folder(store, tmp_path, name):
    (tmp_path / "keep").mkdir()
    with pytest.raises(UserError, match="is not an identifier"):
        write_report(store, name, tmp_path / "reports" / name)
    assert (tmp_path / "keep").is_dir() and not (tmp_path / "reports").exists()


def test_page_renders_in_headless_chromium_without_missing_images(store, tmp_path):
    chromium = program("chromium", "chromium-browser", install="apt-get install chromium")
    index = write_report(store, "g", tmp_path / "reports" / "g")
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            index.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", result.stdout)
    assert body, result.stdout[:500]
    assert 'data-images="5"' in body.group(1)
    assert 'data-broken-images="0"' in body.group(1)
    assert "Table-to-text generation (as Li &amp; Liang 2021, Table 1)</h2>" in result.stdout


def test_column_groups_keep_every_table_within_the_width():
    assert column_groups(8, [10, 10, 10], 80) == [[0, 1, 2]]
    groups = column_groups(8, [10, 10, 10, 10, 10], 40)
    assert groups == [[0, 1], [2, 3], [4]]
    assert column_groups(8, [90], 40) == [[0]]  # one column too wide for any table: alone


@pytest.mark.parametrize("width", [80, 50])
def test_the_run_summary_never_cuts_a_name_or_a_number(reference, width):
    """In an 80-column CI log (and narrower), method names and numbers are printed whole:
    a table too wide is split into several, each with the method column."""
    from io import StringIO

    from rich.console import Console

    from bench.reports import terminal

    _, results = reference
    store = Store(results / "bench.sqlite", readonly=True)
    out = StringIO()
    terminal.results_summary(store, "tiny", Console(file=out, width=width, color_system=None))
    text = out.getvalue()
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())
    frame = results_frame(store, "tiny")
    for task in frame.task.unique():
        tables = text.count(f"tiny: {task}")
        assert text.count("finetune") >= tables and text.count("prefix") >= tables
    for _, part in frame.groupby("task"):  # every cell of the matrix appears whole
        table = matrix(part, intervals=False)
        for i in range(len(table.rows)):
            for j in range(len(table.columns)):
                assert re.search(rf"(?<![\d.,]){re.escape(table.cell_text(i, j))}(?![\d.,])", text)
    if width == 50:
        assert "(1/2)" in text


def test_a_rerun_of_a_finished_grid_imports_no_engine_and_keeps_its_report(reference, tmp_path):
    """Every cell stored: no torch import, and a report rendered from exactly this store and
    code is not rendered again (it is when the store or the options change)."""
    import subprocess
    import sys

    grid, results = reference
    copy = tmp_path / "r"
    shutil.copytree(results, copy)
    index = copy / "reports" / "tiny" / "index.html"
    before = index.stat().st_mtime_ns
    script = (
        "import sys\nfrom bench.cli import main\n"
        f"sys.argv = ['bench', 'run', '--grid', {str(grid)!r}, '--results-dir', {str(copy)!r}]\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
        "print('engine imported:', 'torch' in sys.modules or 'transformers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "engine imported: False" in done.stdout and "0 run, 4 already done" in done.stderr
    assert index.stat().st_mtime_ns == before
    store = Store(copy / "bench.sqlite")
    write_report(store, "tiny", copy / "reports" / "tiny")
    assert index.stat().st_mtime_ns == before
    write_report(store, "tiny", copy / "reports" / "tiny", intervals=True)
    assert index.stat().st_mtime_ns != before
    again = index.stat().st_mtime_ns
    store.register_grid(
        "tiny", store.grid_spec("tiny") + "\n# edited", [r["cell"] for r in store.runs("tiny")]
    )
    write_report(store, "tiny", copy / "reports" / "tiny", intervals=True)
    assert index.stat().st_mtime_ns != again
    store.close()


def test_the_report_says_which_method_differences_the_data_supports(reference):
    _, results = reference
    text = (results / "reports" / "tiny" / "report.md").read_text()
    section = text.split("## Methods compared", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| mini-")]
    # 2 tasks: mini-e2e test, mini-webnlg test_seen and test_unseen; bleu and rouge_l each
    assert len(rows) == 6 and all("prefix(length=4, mlp_hidden=32) vs finetune" in r for r in rows)
    assert all(r.rstrip(" |").rsplit("| ", 1)[1] in {"better", "same", "worse"} for r in rows)
    assert "test_unseen [OOD]" in section
    page = (results / "reports" / "tiny" / "index.html").read_text()
    assert '<h2 id="methods">Methods compared</h2>' in page and "vs finetune" in page


def test_without_stored_predictions_the_report_says_why_no_method_is_compared(store, tmp_path):
    out = tmp_path / "report"
    write_report(store, "g", out)
    section = (out / "report.md").read_text().split("## Methods compared", 1)[1]
    assert section.strip().startswith("No methods compared: ") and "|" not in section
