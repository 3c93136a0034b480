"""The store's results as one pandas frame: the only way the report layer reads scores.

One row per (cell, split, metric) of finished cells, on the paper's scale of each task (the store
keeps each official scorer's own scale, e.g. E2E BLEU 0-1), with the metric's direction and the
cell's parsed settings. Tables and plots aggregate over seeds (and low-data samples) from here.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from bench.metrics.suites import suite_metric
from bench.results.store import Store
from bench.spec.registry import TASKS
from bench.spec.task import split_tag

COLUMNS = [
    "grid",
    "cell",
    "task",
    "split",
    "ood",
    "method",
    "label",
    "settings",
    "model",
    "checkpoint",
    "seed",
    "n_train",
    "metric",
    "value",
    "n",
    "low",
    "high",
    "trained_params",
    "stored_params",
    "total_params",
    "stored_bytes",
]


LOSS_COLUMNS = [
    "grid",
    "cell",
    "task",
    "method",
    "label",
    "settings",
    "model",
    "checkpoint",
    "seed",
    "n_train",
    "kind",  # train: per optimizer step; dev: per epoch
    "step",
    "value",
]


def losses_frame(store: Store, grid: str | None = None) -> pd.DataFrame:
    """One row per (cell, kind, step) of the finished cells' losses, cells as in `results_frame`."""
    frame = pd.DataFrame([dict(r) for r in store.loss_rows(grid)], columns=LOSS_COLUMNS)
    frame["settings"] = frame["settings"].map(json.loads)
    return frame


def results_frame(store: Store, grid: str | None = None) -> pd.DataFrame:
    frame = pd.DataFrame([dict(r) for r in store.results(grid)], columns=COLUMNS)
    frame["tag"] = frame["ood"].map(split_tag)  # ID, OOD or all
    frame["ood"] = frame["tag"] == "OOD"
    frame["settings"] = frame["settings"].map(json.loads)
    suites = {task: TASKS.get(task)().suite if task in TASKS else "" for task in set(frame["task"])}
    entries = [
        suite_metric(suites[t], m) for t, m in zip(frame["task"], frame["metric"], strict=True)
    ]
    factors = [e.paper_factor if e else 1.0 for e in entries]
    for column in ("value", "low", "high"):
        frame[column] = frame[column].astype(float) * factors
    frame["higher_is_better"] = [e.metric.higher_is_better if e else True for e in entries]
    frame["decimals"] = [e.paper_decimals if e else None for e in entries]
    frame["row"] = frame["label"] + frame["n_train"].map(
        lambda n: "" if pd.isna(n) else f" n={int(n)}"
    )
    return frame


@dataclass(frozen=True)
class Summary:
    """One table entry: a score over the runs (seeds, low-data samples) that share a row."""

    mean: float
    std: float | None  # None for a single run
    runs: int
    seeds: int  # distinct seeds among the runs (fewer than runs: sampled low-data training sets)
    half: float | None  # the half-width of the mean's 95% interval over runs (Student t)
    low: float | None  # the 95% bootstrap interval; over several runs, the span of theirs
    high: float | None


def summarize(values: pd.DataFrame) -> Summary:
    """Aggregate the rows of one (row, task, split, metric) group."""
    from scipy import stats

    scores = values["value"]
    lows, highs = values["low"].dropna(), values["high"].dropna()
    std = float(scores.std(ddof=1)) if len(scores) > 1 else None
    half = None
    if std is not None:
        half = float(stats.t.ppf(0.975, len(scores) - 1)) * std / len(scores) ** 0.5
    return Summary(
        mean=float(scores.mean()),
        std=std,
        runs=len(scores),
        seeds=int(values["seed"].nunique()) if "seed" in values else len(scores),
        half=half,
        low=float(lows.min()) if len(lows) else None,
        high=float(highs.max()) if len(highs) else None,
    )


def trained_share(frame: pd.DataFrame) -> pd.Series:
    """Percent of the base model's parameters each row trains, by row."""
    params = frame.groupby("row", sort=False).agg(
        trained=("trained_params", "max"), total=("total_params", "max")
    )
    return 100 * params["trained"] / params["total"]


@dataclass(frozen=True)
class Missing:
    """A metric some finished cells of a task have no score for on a split, and why."""

    task: str
    split: str
    metric: str
    reason: str
    cells: int  # finished cells of the task without it
    of: int  # finished cells of the task


def missing_metrics(store: Store, grid: str | None = None) -> list[Missing]:
    """The grid's missing metrics (no Java, a crashed JVM), one entry per task, split, metric
    and reason, with how many of the task's finished cells lack it: what a table's blank needs
    said beside it."""
    done = Counter(run["task"] for run in store.runs(grid) if run["status"] == "done")
    counts = Counter(
        (row["task"], row["split"], row["metric"], row["reason"])
        for row in store.missing_metrics(grid)
    )
    return [Missing(*key, cells, done[key[0]]) for key, cells in counts.items()]


def failure_line(run: dict) -> str:
    """A cell that did not finish, in one line: which cell, its status and the error's first line
    (the traceback stays in the store)."""
    reason = run["error"].splitlines()[0] if run["error"] else ""
    return (
        f"{run['cell']} {run['task']} / {run['label']} / seed {run['seed']}: "
        f"{run['status']} {reason}"
    ).rstrip()
