"""The results matrix of a grid, and its ID-vs-OOD plot, rendered from the store only.

Rows are methods (with their settings, and the training size when a grid varies it); columns
are task x split x metric, tagged ID or OOD, then the trained share of parameters and the stored
parameter count. Cells with several seeds show mean ± std.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd

from bench.store import Store


def results_frame(store: Store, grid: str | None = None) -> pd.DataFrame:
    rows = [dict(r) for r in store.results(grid)]
    columns = [
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
    frame = pd.DataFrame(rows, columns=columns)
    frame["ood"] = frame["ood"].astype(bool)
    factors = _paper_factors(frame)
    for column in ("value", "low", "high"):
        frame[column] = frame[column].astype(float) * factors
    frame["row"] = frame["label"] + frame["n_train"].map(
        lambda n: "" if pd.isna(n) else f" n={int(n)}"
    )
    return frame


def _paper_factors(frame: pd.DataFrame) -> list[float]:
    """The store keeps each official scorer's scale (E2E BLEU 0-1); tables use the paper's."""
    from bench.metrics.suites import paper_factor
    from bench.registry import TASKS

    suites = {t: TASKS.get(t)().suite if t in TASKS else "" for t in set(frame["task"])}
    return [paper_factor(suites[t], m) for t, m in zip(frame["task"], frame["metric"], strict=True)]


def _mean_std(values: pd.Series) -> str:
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows x (task / split [ID|OOD] / metric) as formatted strings, in grid order."""
    rows = list(dict.fromkeys(frame["row"]))
    frame = frame.assign(
        column=frame["task"]
        + " / "
        + frame["split"]
        + frame["ood"].map({True: " [OOD]", False: " [ID]"})
        + " / "
        + frame["metric"]
    )
    columns = list(dict.fromkeys(frame["column"]))
    table = frame.pivot_table(index="row", columns="column", values="value", aggfunc=_mean_std)
    table = table.reindex(index=rows, columns=columns)
    params = frame.groupby("row").agg(
        trained=("trained_params", "max"),
        stored=("stored_params", "max"),
        total=("total_params", "max"),
    )
    table["trained %"] = (100 * params["trained"] / params["total"]).map(lambda v: f"{v:.3g}")
    table["stored params"] = params["stored"].map(lambda v: f"{int(v):,}")
    table.index.name = "method"
    return table


def plot_id_vs_ood(frame: pd.DataFrame, path: Path) -> bool:
    """One panel per task that has both ID and OOD splits; False when no task has both."""
    panels = []
    for task, part in frame.groupby("task", sort=False):
        if part["ood"].any() and (~part["ood"]).any():
            panels.append((task, part))
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (task, part) in zip(axes[0], panels, strict=True):
        metric = part["metric"].iloc[0]
        part = part[part["metric"] == metric]
        id_split = part.loc[~part["ood"], "split"].iloc[0]
        ood_split = part.loc[part["ood"], "split"].iloc[0]
        means = part.groupby(["row", "split"], sort=False)["value"].mean().unstack()
        for row, values in means.iterrows():
            ax.scatter(values[id_split], values[ood_split], s=60)
            ax.annotate(
                row,
                (values[id_split], values[ood_split]),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=9,
            )
        ax.set_xlabel(f"{id_split} (ID) {metric}")
        ax.set_ylabel(f"{ood_split} (OOD) {metric}")
        ax.set_title(task)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(store: Store, grid: str, out_dir: Path) -> Path:
    """`report.md` (and `id_vs_ood.png` where a task has OOD splits) for one grid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = results_frame(store, grid)
    runs = store.runs(grid)
    lines = [f"# Results: grid `{grid}`", ""]
    done = sum(r["status"] == "done" for r in runs)
    lines.append(f"{done} of {len(runs)} cells finished.")
    if not frame.empty:
        models = ", ".join(sorted(set(frame["model"])))
        lines += [
            "",
            f"Model: {models}. Scores are on the paper's scale of each task "
            "(mini: BLEU 0-100, ROUGE-L F1 x 100; E2E BLEU, METEOR, ROUGE-L x 100).",
            "",
            matrix(frame).to_markdown(),
            "",
        ]
        if plot_id_vs_ood(frame, out_dir / "id_vs_ood.png"):
            lines += ["![ID vs OOD score per method](id_vs_ood.png)", ""]
    problems = [r for r in runs if r["status"] != "done"]
    if problems:
        lines += ["## Cells not finished", ""]
        for r in problems:
            reason = (r["error"] or "").splitlines()[0] if r["error"] else ""
            lines.append(
                f"- `{r['cell']}` {r['task']} / {r['label']} / seed {r['seed']}: "
                f"{r['status']} {reason}".rstrip()
            )
        lines.append("")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
