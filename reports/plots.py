"""The report's figures (matplotlib, PNG and SVG side by side), from the results frame and the
stored loss curves only. Each function returns False when the grid has nothing to show for it,
so a report holds only the figures its grid can fill."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from bench.reports.frame import summarize
from bench.reports.layouts import LENGTH_SETTING, headline_metrics, metric_name, task_name
from bench.results.store import Store


@dataclass(frozen=True)
class Plot:
    name: str  # file stem: <name>.png and <name>.svg
    title: str


def _save(fig: Figure, out_dir: Path, name: str) -> None:
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(out_dir / f"{name}.{suffix}", dpi=110)
    plt.close(fig)


def _panels(count: int, width: float = 4.6, height: float = 3.6):
    fig, axes = plt.subplots(1, count, figsize=(width * count, height), squeeze=False)
    return fig, list(axes[0])


def _band(group: pd.DataFrame) -> tuple[float, float, float]:
    """Mean and the band around it: ± std over runs, or the bootstrap interval of a single run."""
    s = summarize(group)
    if s.std is not None:
        return s.mean, s.mean - s.std, s.mean + s.std
    if s.low is not None and s.high is not None:
        return s.mean, s.low, s.high
    return s.mean, s.mean, s.mean


def _first_id_split(part: pd.DataFrame) -> str:
    ids = part.loc[part["tag"] == "ID", "split"]
    return ids.iloc[0] if len(ids) else part["split"].iloc[0]


def _curves(ax, part: pd.DataFrame, line_by: str) -> None:
    """One line per `line_by` value through its mean at each x (`_x`), with its band."""
    for label, runs in part.groupby(line_by, sort=False):
        points = sorted((int(x), *_band(g)) for x, g in runs.groupby("_x"))
        xs, means, lows, highs = zip(*points, strict=True)
        (line,) = ax.plot(xs, means, marker="o", label=label)
        ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.2)


def _decorate(ax, xlabel: str, task: str, split: str, metric: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{split} {metric_name(metric)}")
    ax.set_title(task_name(task))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def lowdata_curves(frame: pd.DataFrame, out_dir: Path) -> bool:
    sized = frame.dropna(subset=["n_train"])
    panels = []
    for task, part in sized.groupby("task", sort=False):
        if part["n_train"].nunique() > 1:
            split = _first_id_split(part)
            panels += [(task, split, m, part) for m in headline_metrics(part, task)]
    if not panels:
        return False
    fig, axes = _panels(len(panels))
    for ax, (task, split, metric, part) in zip(axes, panels, strict=True):
        part = part[(part["split"] == split) & (part["metric"] == metric)]
        sizes = part["n_train"].astype(int)
        _curves(ax, part.assign(_x=sizes), "label")
        ax.set_xscale("log")
        ax.set_xticks(sorted(set(sizes)), [str(n) for n in sorted(set(sizes))])
        ax.xaxis.set_minor_formatter(NullFormatter())
        _decorate(ax, "training examples", task, split, metric)
    _save(fig, out_dir, "lowdata")
    return True


def prefix_length_curves(frame: pd.DataFrame, out_dir: Path) -> bool:
    lengths = frame["settings"].map(lambda s: s.get(LENGTH_SETTING))
    frame = frame.assign(_length=lengths)
    varied = frame.dropna(subset=["_length"]).groupby("method")["_length"].nunique()
    methods = list(varied[varied > 1].index)
    if not methods:
        return False
    part = frame[frame["method"].isin(methods) & frame["_length"].notna()]
    panels = [
        (task, split, metric)
        for task, tp in part.groupby("task", sort=False)
        for split in [_first_id_split(tp)]
        for metric in headline_metrics(tp, task)
    ]
    fig, axes = _panels(len(panels))
    for ax, (task, split, metric) in zip(axes, panels, strict=True):
        sel = part[(part["task"] == task) & (part["split"] == split) & (part["metric"] == metric)]
        _curves(ax, sel.assign(_x=sel["_length"].astype(int)), "method")
        _decorate(ax, "prefix length", task, split, metric)
    _save(fig, out_dir, "prefix_length")
    return True


def id_vs_ood(frame: pd.DataFrame, out_dir: Path) -> bool:
    """Per task with ID and OOD splits: each method at (ID score, OOD score), with error bars."""
    panels = [
        (task, part)
        for task, part in frame.groupby("task", sort=False)
        if (part["tag"] == "ID").any() and (part["tag"] == "OOD").any()
    ]
    if not panels:
        return False
    fig, axes = _panels(len(panels), 5.0, 4.2)
    for ax, (task, part) in zip(axes, panels, strict=True):
        metric = headline_metrics(part, task)[0]
        part = part[part["metric"] == metric]
        id_split = part.loc[part["tag"] == "ID", "split"].iloc[0]
        ood_split = part.loc[part["ood"], "split"].iloc[0]
        for row, runs in part.groupby("row", sort=False):
            x = _band(runs[runs["split"] == id_split])
            y = _band(runs[runs["split"] == ood_split])
            ax.errorbar(
                x[0],
                y[0],
                xerr=[[x[0] - x[1]], [x[2] - x[0]]],
                yerr=[[y[0] - y[1]], [y[2] - y[0]]],
                fmt="o",
                capsize=3,
            )
            ax.annotate(row, (x[0], y[0]), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xlabel(f"{id_split} (ID) {metric_name(metric)}")
        ax.set_ylabel(f"{ood_split} (OOD) {metric_name(metric)}")
        ax.set_title(task_name(task))
        ax.grid(alpha=0.3)
    _save(fig, out_dir, "id_vs_ood")
    return True


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of points no other point beats with as few or fewer parameters, by parameters."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], None
    for i in order:
        score = points[i][1] if higher_is_better else -points[i][1]
        if best is None or score > best:
            front.append(i)
            best = score
    return front


def score_vs_params(frame: pd.DataFrame, out_dir: Path) -> bool:
    """Headline score against trained and stored parameters (log axis), with the Pareto front."""
    task = frame["task"].iloc[0] if not frame.empty else None
    if task is None or frame["row"].nunique() < 2:
        return False
    part = frame[frame["task"] == task]
    split, metric = _first_id_split(part), headline_metrics(part, task)[0]
    part = part[(part["split"] == split) & (part["metric"] == metric)]
    higher = bool(part["higher_is_better"].iloc[0])
    fig, axes = _panels(2, 5.0, 4.0)
    for ax, column, what in zip(
        axes, ("trained_params", "stored_params"), ("trained", "stored"), strict=True
    ):
        rows = [
            (row, float(runs[column].max()), _band(runs)[0])
            for row, runs in part.groupby("row", sort=False)
            if runs[column].max() > 0
        ]
        if not rows:
            continue
        for row, params, score in rows:
            ax.scatter(params, score, s=40)
            ax.annotate(row, (params, score), textcoords="offset points", xytext=(5, 3), fontsize=8)
        front = pareto_front([(p, s) for _, p, s in rows], higher)
        ax.plot(
            [rows[i][1] for i in front],
            [rows[i][2] for i in front],
            "k--",
            linewidth=1,
            label="Pareto front",
        )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a short span
        ax.set_xlabel(f"{what} parameters (log)")
        ax.set_ylabel(f"{task_name(task)} {split} {metric_name(metric)}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    _save(fig, out_dir, "score_vs_params")
    return True


def loss_curves(frame: pd.DataFrame, store: Store, out_dir: Path) -> bool:
    """Training loss per cell against optimizer step, one panel per task."""
    cells = frame.drop_duplicates("cell")
    curves = {cell: store.losses(cell) for cell in cells["cell"]}
    if not any(curves.values()):
        return False
    tasks = list(dict.fromkeys(cells["task"]))
    fig, axes = _panels(len(tasks))
    for ax, task in zip(axes, tasks, strict=True):
        for _, cell in cells[cells["task"] == task].iterrows():
            curve = curves[cell["cell"]]
            if curve:
                steps, values = zip(*curve, strict=True)
                ax.plot(steps, values, label=f"{cell['row']} s{cell['seed']}", linewidth=1)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.set_title(task_name(task))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, out_dir, "loss_curves")
    return True


FIGURES: tuple[tuple[Plot, Callable[..., bool]], ...] = (
    (Plot("lowdata", "Low-data curves (band: ± std over runs)"), lowdata_curves),
    (Plot("prefix_length", "Prefix length"), prefix_length_curves),
    (Plot("id_vs_ood", "ID vs OOD score per method"), id_vs_ood),
    (Plot("score_vs_params", "Score vs trained and stored parameters"), score_vs_params),
)


def draw_all(frame: pd.DataFrame, store: Store, out_dir: Path) -> list[Plot]:
    """Every figure the grid can fill, written to out_dir; the list of those written."""
    drawn = [plot for plot, draw in FIGURES if not frame.empty and draw(frame, out_dir)]
    if not frame.empty and loss_curves(frame, store, out_dir):
        drawn.append(Plot("loss_curves", "Training loss per cell"))
    return drawn
