"""The paper's table layouts, built from the results frame: which tables a grid gets depends on
what it ran, so the mini grid, a paper grid and an ad-hoc grid all get a fitting report.

Tables are numbered as in arXiv:2101.00190v1, whose numbers `data/paper_results.yaml` holds
(the ACL 2021 version adds a table of data statistics first: its Tables 2-4 are these 1-3).

- `table1`: E2E (BLEU NIST METEOR ROUGE-L CIDEr), WebNLG (BLEU/METEOR/TER x S U A), DART.
- `table2`: XSum ROUGE-1/2/L.
- `extrapolation` (the paper's Table 3): ID vs OOD splits of every task that has both.
- `lowdata`: score per training size, when a grid varies n_train.
- `prefix_length`: score per prefix (or prompt/infix) length, when a grid varies it.
- `matrix`: every task x split x metric, for any grid.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import pandas as pd

from bench.reports.frame import Missing, Summary, summarize, trained_share
from bench.reports.paper import matching_rows
from bench.reports.table import Column, Row, Table

METRIC_NAMES = {
    "bleu": "BLEU",
    "nist": "NIST",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "rouge_1": "ROUGE-1",
    "rouge_2": "ROUGE-2",
    "cider": "CIDEr",
    "ter": "TER",
    "bertscore": "BERTScore",
    "bleurt": "BLEURT",
}
TASK_NAMES = {"e2e": "E2E", "webnlg": "WebNLG", "dart": "DART", "xsum": "XSum"}
WEBNLG_SPLITS = {"test_seen": "S", "test_unseen": "U", "test": "A"}
HEADLINE = ("bleu", "rouge_1", "rouge_2", "rouge_l")  # what a per-size or per-length plot shows
LENGTH_SETTING = "length"

Key = tuple[Hashable, ...]


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def task_name(task: str) -> str:
    return TASK_NAMES.get(task, task)


def headline_metrics(frame: pd.DataFrame, task: str) -> list[str]:
    present = list(dict.fromkeys(frame.loc[frame["task"] == task, "metric"]))
    chosen = [m for m in HEADLINE if m in present][:2]
    return chosen or present[:1]


def _build(
    name: str,
    title: str,
    frame: pd.DataFrame,
    row_of: Callable[[pd.DataFrame], pd.Series],
    columns: list[tuple[Column, Key]],
    column_of: Callable[[pd.DataFrame], pd.Series],
    notes: list[str],
    intervals: bool,
    share: bool = True,
    references: bool = False,
    paper: str | None = None,
) -> Table | None:
    """Rows (by `row_of`) x the given columns (matched by `column_of`), each a Summary over runs;
    None when no column has a value. `share` prepends the trained-parameter percentage."""
    keys = [key for _, key in columns]
    part = frame.assign(_row=row_of(frame), _col=column_of(frame))
    part = part[part["_col"].isin(keys)]
    if part.empty:
        return None
    summaries = {
        (row, col): summarize(group) for (row, col), group in part.groupby(["_row", "_col"])
    }
    row_names = list(dict.fromkeys(part["_row"]))
    shares = trained_share(part.assign(row=part["_row"]))
    head = [Column(("% params",), None, significant=2)] if share else []
    rows = [
        Row(
            str(row),
            tuple(
                ([float(shares[row])] if share else [])
                + [summaries.get((row, key)) for key in keys]
            ),
        )
        for row in row_names
    ]
    if references:
        for published in matching_rows(keys, set(frame["model"])):
            values = [published.scores.get(key) for key in keys]  # type: ignore[arg-type]
            cells = tuple(([None] if share else []) + values)
            rows.append(Row(published.label, cells, published.source))
    notes = [*notes, runs_note(list(summaries.values()), intervals)]
    return Table(name, title, head + [c for c, _ in columns], rows, notes, intervals, paper)


def runs_note(summaries: list[Summary], intervals: bool = False) -> str:
    """What an entry is: a mean ± the half-width of its 95% interval (Student t) over n runs,
    said as seeds where each run is one (low data also samples training sets); a single run
    has no ±. With `intervals`, what the bracket is."""
    counts = sorted({s.runs for s in summaries})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    what = "seeds" if all(s.seeds == s.runs for s in summaries) else "runs (seeds x training sets)"
    if counts[-1] < 2:
        note = f"One run per entry (n={n}): no ± without several seeds."
    elif counts[0] < 2:
        note = f"Mean ± 95% CI (Student t) over n={n} {what}; an entry of one run has no ±."
    else:
        note = f"Mean ± 95% CI (Student t) over n={n} {what}."
    if intervals:
        note += " [low, high]: 95% bootstrap interval over test inputs (several runs: their span)."
    return note


def _by_task_split_metric(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(
        list(zip(frame["task"], frame["split"], frame["metric"], strict=True)), frame.index
    )


def _column(frame: pd.DataFrame, key: Key, header: tuple[str, ...]) -> Column:
    """The column of a (task, split, metric, ...) key: its direction, and the paper's decimals
    where the task's suite has them."""
    rows = frame[(frame["task"] == key[0]) & (frame["metric"] == key[2])]
    higher = bool(rows["higher_is_better"].iloc[0]) if len(rows) else True
    decimals = rows["decimals"].dropna()
    return Column(header, higher, int(decimals.iloc[0]) if len(decimals) else None)


TAG_ORDER = {"ID": 0, "OOD": 1, "all": 2}


def _paper_order(keys: list[Key], tags: dict[Key, str]) -> list[Key]:
    """(task, split, metric) keys grouped by task (first seen first), then by split, its ID
    ones before OOD before all, then by metric; otherwise in the order given."""
    tasks = list(dict.fromkeys(key[0] for key in keys))
    splits = list(dict.fromkeys(key[:2] for key in keys))
    return sorted(
        keys,
        key=lambda k: (tasks.index(k[0]), TAG_ORDER.get(tags[k], 3), splits.index(k[:2])),
    )


def _present(frame: pd.DataFrame) -> set[Key]:
    return set(_by_task_split_metric(frame))


def table1(frame: pd.DataFrame, intervals: bool) -> Table | None:
    present = _present(frame)
    columns: list[tuple[Column, Key]] = []
    for metric in ("bleu", "nist", "meteor", "rouge_l", "cider"):
        key = ("e2e", "test", metric)
        if key in present:
            columns.append((_column(frame, key, ("E2E", metric_name(metric))), key))
    for metric in ("bleu", "meteor", "ter"):
        for split, short in WEBNLG_SPLITS.items():
            key = ("webnlg", split, metric)
            if key in present:
                columns.append((_column(frame, key, ("WebNLG", metric_name(metric), short)), key))
    for metric in ("bleu", "meteor", "ter", "bertscore", "bleurt"):
        key = ("dart", "test", metric)
        if key in present:
            columns.append((_column(frame, key, ("DART", metric_name(metric))), key))
    if not columns:
        return None
    notes = ["WebNLG S, U, A: seen, unseen and all categories. TER: lower is better."]
    return _build(
        "table1",
        "Table-to-text generation",
        frame,
        lambda f: f["row"],
        columns,
        _by_task_split_metric,
        notes,
        intervals,
        references=True,
        paper="Table 1",
    )


def table2(frame: pd.DataFrame, intervals: bool) -> Table | None:
    present = _present(frame)
    columns = [
        (_column(frame, key, ("XSum", metric_name(key[2]))), key)
        for key in (("xsum", "test", m) for m in ("rouge_1", "rouge_2", "rouge_l"))
        if key in present
    ]
    if not columns:
        return None
    return _build(
        "table2",
        "Summarization (XSum)",
        frame,
        lambda f: f["row"],
        columns,
        _by_task_split_metric,
        [],
        intervals,
        references=True,
        paper="Table 2",
    )


def extrapolation(frame: pd.DataFrame, intervals: bool) -> Table | None:
    """Every task with both ID and OOD splits: its ID and OOD scores side by side."""
    columns: list[tuple[Column, Key]] = []
    for task, part in frame.groupby("task", sort=False):
        if not ((part["tag"] == "ID").any() and (part["tag"] == "OOD").any()):
            continue
        splits = part.drop_duplicates("split")
        ordered = pd.concat([splits[splits["tag"] == "ID"], splits[splits["tag"] == "OOD"]])
        for split, kind in zip(ordered["split"], ordered["tag"], strict=True):
            tag = f"{kind}: {split}"
            for metric in dict.fromkeys(part.loc[part["split"] == split, "metric"]):
                key = (task, split, metric)
                columns.append(
                    (_column(frame, key, (task_name(task), tag, metric_name(metric))), key)
                )
    if not columns:
        return None
    return _build(
        "extrapolation",
        "Extrapolation: in-distribution (ID) vs unseen-topic (OOD) test splits",
        frame,
        lambda f: f["row"],
        columns,
        _by_task_split_metric,
        ["Trained on some topics, tested on unseen ones."],
        intervals,
        references=True,
        paper="Table 3",
    )


def lowdata(frame: pd.DataFrame, intervals: bool) -> Table | None:
    """Rows are methods; columns are training sizes, for tasks run at several sizes."""
    sized = frame.dropna(subset=["n_train"])
    columns: list[tuple[Column, Key]] = []
    for task, part in sized.groupby("task", sort=False):
        sizes = sorted(set(part["n_train"].astype(int)))
        if len(sizes) < 2:
            continue
        for split in dict.fromkeys(part["split"]):
            for metric in headline_metrics(part, task):
                for n in sizes:
                    key = (task, split, metric, n)
                    header = (task_name(task), f"{split} {metric_name(metric)}", f"n={n}")
                    columns.append((_column(frame, key, header), key))
    if not columns:
        return None
    return _build(
        "lowdata",
        "Low-data: score by number of training examples",
        sized,
        lambda f: f["label"],
        columns,
        lambda f: pd.Series(
            list(zip(f["task"], f["split"], f["metric"], f["n_train"].astype(int), strict=True)),
            f.index,
        ),
        [],
        intervals,
        share=False,
        paper="Figure 3",
    )


def prefix_length(frame: pd.DataFrame, intervals: bool) -> Table | None:
    """Rows are (method, length) for every method run at several lengths."""
    lengths = frame["settings"].map(lambda s: s.get(LENGTH_SETTING))
    varied = [
        method
        for method, values in lengths.groupby(frame["method"])
        if values.dropna().nunique() > 1
    ]
    part = frame[frame["method"].isin(varied) & lengths.notna()]
    if part.empty:
        return None
    part = part.assign(_length=lengths[part.index].astype(int)).sort_values(
        ["method", "_length"], kind="stable"
    )
    keys = list(dict.fromkeys(_by_task_split_metric(part)))
    columns = [
        (_column(frame, key, (task_name(key[0]), key[1], metric_name(key[2]))), key) for key in keys
    ]
    return _build(
        "prefix_length",
        "Prefix length",
        part,
        lambda f: f["method"] + " length " + f["_length"].astype(str),
        columns,
        _by_task_split_metric,
        [],
        intervals,
        paper="Figure 4",
    )


def matrix(frame: pd.DataFrame, intervals: bool) -> Table | None:
    """Every task x split x metric, tagged ID, OOD or all (both mixed), with parameter counts.
    A task's splits run ID, OOD, all, as the paper's WebNLG S, U, A, whatever order the store
    holds them in."""
    tags = dict(zip(_by_task_split_metric(frame), frame["tag"], strict=True))
    keys = _paper_order(list(dict.fromkeys(_by_task_split_metric(frame))), tags)
    if not keys:
        return None
    columns = [
        (
            _column(
                frame,
                key,
                (
                    task_name(key[0]),
                    f"{key[1]} [{tags[key]}]",
                    metric_name(key[2]),
                ),
            ),
            key,
        )
        for key in keys
    ]
    table = _build(
        "matrix",
        "Results matrix",
        frame,
        lambda f: f["row"],
        columns,
        _by_task_split_metric,
        ["Every finished cell of the grid."],
        intervals,
    )
    if table is None:
        return None
    stored = frame.groupby("row", sort=False)["stored_params"].max()
    table.columns.append(Column(("stored params",), None, decimals=0))
    table.rows = [Row(r.label, (*r.values, float(stored[r.label])), r.source) for r in table.rows]
    return table


LAYOUTS = (table1, table2, extrapolation, lowdata, prefix_length, matrix)


def tables(
    frame: pd.DataFrame, intervals: bool = False, missing: Sequence[Missing] = ()
) -> list[Table]:
    """Every layout the grid's results fill, in the paper's order, the matrix last. A metric
    some cells have no score for (`missing`) is a footnote, with its reason, of every table
    showing its task, and of the matrix: a blank or absent column always says why."""
    built = [t for t in (layout(frame, intervals) for layout in LAYOUTS) if t is not None]
    for table in built:
        shown = {column.header[0] for column in table.columns}
        table.notes += [
            missing_note(m) for m in missing if table.name == "matrix" or task_name(m.task) in shown
        ]
    return built


def missing_note(missing: Missing) -> str:
    """Which metric is missing where, for how many of the task's cells, and why (the fix)."""
    return (
        f"{metric_name(missing.metric)} missing on {task_name(missing.task)} {missing.split} "
        f"({missing.cells} of {missing.of} cells): {missing.reason}"
    )
