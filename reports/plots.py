"""The report's figures (matplotlib, PNG and SVG side by side), from the results frame and the
stored loss curves only. Each function returns False when the grid has nothing to show for it,
so a report holds only the figures its grid can fill. A method has one colour in every figure of
every report (`method_colour`); log axes label several ticks as plain numbers."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from bench.reports.frame import summarize
from bench.reports.layouts import LENGTH_SETTING, headline_metrics, metric_name, task_name
from bench.results.store import Store


@dataclass(frozen=True)
class Plot:
    name: str  # file stem: <name>.png and <name>.svg
    title: str


# The paper's colours for its two methods (Figure 3: fine-tuning blue, prefix-tuning orange),
# then one of its own for each method bench ships; any other method's comes from its name.
METHOD_COLOURS = {
    "finetune": "#1f77b4",
    "prefix": "#ff7f0e",
    "adapter": "#2ca02c",
    "lora": "#d62728",
    "finetune-top": "#9467bd",
    "infix": "#8c564b",
    "prompt": "#e377c2",
    "ensemble": "#7f7f7f",
    "cocktail": "#bcbd22",
    "peft": "#17becf",
}
OTHER_COLOURS = (
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
    "#756bb1", "#636363", "#6b6ecf", "#b5cf6b", "#e7ba52", "#d6616b", "#ce6dbd", "#9c9ede",
)  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def method_colour(method: str) -> str:
    """The method's colour, the same in every report: its own for the methods bench ships,
    else one picked by a hash of its name (not by the order methods appear in a grid)."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    digest = int(hashlib.sha256(method.encode()).hexdigest(), 16)
    return OTHER_COLOURS[digest % len(OTHER_COLOURS)]


def _styles(part: pd.DataFrame, key: str) -> dict[str, tuple[str, str]]:
    """(colour, marker) per `key` value (a row label): its method's colour, and a marker
    that tells apart the rows of one method (two prefix lengths)."""
    firsts = part.drop_duplicates(key)
    seen: dict[str, int] = {}
    styles = {}
    for value, method in zip(firsts[key], firsts["method"], strict=True):
        index = seen[method] = seen.get(method, -1) + 1
        styles[value] = (method_colour(method), MARKERS[index % len(MARKERS)])
    return styles


def _plain(value: float, _position: object = None) -> str:
    """A tick label as a plain number: 2, 0.5, 300, 25k, 1.2M (never 10^5)."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


SUBS = (
    (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0),
    (1.0, 2.0, 3.0, 5.0, 7.0),
    (1.0, 2.0, 5.0),
    (1.0, 3.0),
    (1.0,),
)
MAX_TICKS = 6  # labels beyond this crowd a panel's log axis


def log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis over [low, high]: the densest multiples per decade (`SUBS`)
    with at most MAX_TICKS in range, so a short span still has several labels."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for subs in SUBS:
        ticks = [m * 10.0**d for d in decades for m in subs if low <= m * 10.0**d <= high]
        if len(ticks) <= MAX_TICKS:
            break
    return ticks


def _log_axis(axis, low: float, high: float) -> None:
    """A log axis labelled at `log_ticks` with plain numbers, no minor labels."""
    axis.set_major_locator(FixedLocator(log_ticks(low, high)))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_formatter(NullFormatter())


def _label_points(ax, points: list[tuple[str, float, float]]) -> None:
    """Each point's name beside it, on the side facing the middle of the axes, so a name at
    the right edge is not cut (the figure is also saved with everything drawn in it)."""
    if not points:
        return
    xs = [x for _, x, _ in points]
    log = ax.get_xscale() == "log"
    middle = math.sqrt(min(xs) * max(xs)) if log and min(xs) > 0 else (min(xs) + max(xs)) / 2
    for name, x, y in points:
        left = x > middle
        ax.annotate(
            name,
            (x, y),
            textcoords="offset points",
            xytext=(-6 if left else 6, 4),
            ha="right" if left else "left",
            fontsize=8,
        )


def _save(fig: Figure, out_dir: Path, name: str) -> None:
    fig.tight_layout()
    for suffix in ("png", "svg"):  # tight: a legend or a point's name is never cut off
        fig.savefig(out_dir / f"{name}.{suffix}", dpi=110, bbox_inches="tight", pad_inches=0.1)
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
    """One line per `line_by` value through its mean at each x (`_x`), with its band, in its
    method's colour."""
    styles = _styles(part, line_by)
    for label, runs in part.groupby(line_by, sort=False):
        points = sorted((int(x), *_band(g)) for x, g in runs.groupby("_x"))
        xs, means, lows, highs = zip(*points, strict=True)
        colour, marker = styles[label]
        ax.plot(xs, means, marker=marker, color=colour, label=label)
        ax.fill_between(xs, lows, highs, color=colour, alpha=0.2)


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
    """Per task with ID and OOD splits: each method at (ID score, OOD score), with error bars
    (± std over seeds, or one run's 95% bootstrap interval) and the line y = x (as good out
    of distribution as in)."""
    panels = [
        (task, part)
        for task, part in frame.groupby("task", sort=False)
        if (part["tag"] == "ID").any() and (part["tag"] == "OOD").any()
    ]
    if not panels:
        return False
    fig, axes = _panels(len(panels), 5.0, 4.6)
    for ax, (task, part) in zip(axes, panels, strict=True):
        metric = headline_metrics(part, task)[0]
        part = part[part["metric"] == metric]
        id_split = part.loc[part["tag"] == "ID", "split"].iloc[0]
        ood_split = part.loc[part["ood"], "split"].iloc[0]
        styles = _styles(part, "row")
        bands = []
        for row, runs in part.groupby("row", sort=False):
            x = _band(runs[runs["split"] == id_split])
            y = _band(runs[runs["split"] == ood_split])
            colour, marker = styles[row]
            ax.errorbar(
                x[0],
                y[0],
                xerr=[[x[0] - x[1]], [x[2] - x[0]]],
                yerr=[[y[0] - y[1]], [y[2] - y[0]]],
                fmt=marker,
                color=colour,
                capsize=3,
                label=row,
            )
            bands += [x, y]
        low = min(b[1] for b in bands)
        high = max(b[2] for b in bands)
        pad = 0.05 * (high - low or 1.0)
        span = (low - pad, high + pad)
        ax.plot(span, span, "k:", linewidth=1, label="y = x (OOD as good as ID)")
        ax.set_xlim(span)
        ax.set_ylim(span)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"{id_split} (ID) {metric_name(metric)}")
        ax.set_ylabel(f"{ood_split} (OOD) {metric_name(metric)}")
        ax.set_title(task_name(task))
        ax.grid(alpha=0.3)
        ax.legend(
            fontsize=7,
            title="bars: ± std over seeds\n(one seed: 95% bootstrap CI)",
            title_fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
        )
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
        styles = _styles(part, "row")
        for row, params, score in rows:
            colour, marker = styles[row]
            ax.scatter(params, score, s=40, color=colour, marker=marker)
        ax.set_xscale("log")
        params = [p for _, p, _ in rows]
        ax.set_xlim(min(params) / 2, max(params) * 2)  # room for the end points' names
        _log_axis(ax.xaxis, min(params) / 2, max(params) * 2)
        ax.margins(y=0.12)  # room above and below for the points' names
        _label_points(ax, rows)
        front = pareto_front([(p, s) for _, p, s in rows], higher)
        ax.plot(
            [rows[i][1] for i in front],
            [rows[i][2] for i in front],
            "k--",
            linewidth=1,
            label="Pareto front",
        )
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
        mine = cells[cells["task"] == task]
        styles = _styles(mine, "row")
        losses = []
        for row, runs in mine.groupby("row", sort=False):
            colour, _ = styles[row]
            for k, (_, cell) in enumerate(runs.iterrows()):
                curve = curves[cell["cell"]]
                if curve:
                    steps, values = zip(*curve, strict=True)
                    losses += [v for v in values if v > 0]
                    label = f"{row} ({len(runs)} seeds)" if len(runs) > 1 else row
                    ax.plot(steps, values, color=colour, linewidth=1, alpha=0.8,
                            linestyle=("-", "--", ":", "-.")[k % 4],
                            label=label if k == 0 else None)  # fmt: skip
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (log)")
        if losses:
            ax.set_yscale("log")
            _log_axis(ax.yaxis, min(losses), max(losses))
        ax.set_title(task_name(task))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    _save(fig, out_dir, "loss_curves")
    return True


FIGURES: tuple[tuple[Plot, Callable[..., bool]], ...] = (
    (
        Plot(
            "lowdata",
            "Low-data curves: mean over runs; band: ± std over runs (seeds x "
            "training sets), or one run's 95% bootstrap interval",
        ),
        lowdata_curves,
    ),
    (
        Plot(
            "prefix_length",
            "Prefix length: mean over seeds; band: ± std over seeds, or one "
            "run's 95% bootstrap interval",
        ),
        prefix_length_curves,
    ),
    (
        Plot(
            "id_vs_ood",
            "ID vs OOD score per method: bars ± std over seeds (one seed: its 95% "
            "bootstrap interval); dotted: y = x, below it a method scores lower out of "
            "distribution",
        ),
        id_vs_ood,
    ),
    (Plot("score_vs_params", "Score vs trained and stored parameters"), score_vs_params),
)


def draw_all(frame: pd.DataFrame, store: Store, out_dir: Path) -> list[Plot]:
    """Every figure the grid can fill, written to out_dir; the list of those written."""
    drawn = [plot for plot, draw in FIGURES if not frame.empty and draw(frame, out_dir)]
    if not frame.empty and loss_curves(frame, store, out_dir):
        drawn.append(Plot("loss_curves", "Training loss per cell"))
    return drawn
