"""A grid's plan (`bench.perf.plan.Plan`) as a terminal table: one row per cell, then totals and
what the estimates rest on."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def si(value: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M': three significant digits, SI prefix."""
    if value is None:
        return "-"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


STATUS = {"stored": "stored", "held": "held", "to run": "run"}


def plan_table(plan: dict[str, Any], console: Console) -> None:
    """`plan`: `Plan.as_json()`, one row a cell (tokens trained and decoded, peak memory in GB),
    numbers unbroken in 80 columns: task and method names wrap."""
    cells = plan["cells"]
    sizes = any(c["n_train"] is not None for c in cells)
    table = Table(
        box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left",
        title=f"plan of {plan['grid']} on {plan['model']}, time on {plan['target']}",
    )  # fmt: skip
    for header in ("task", "method", "seed", *(("n",) if sizes else ()), "status", "steps",
                   "trained", "decoded", "FLOPs", "GB", "time"):  # fmt: skip
        wraps = header in ("task", "method")
        left = wraps or header in ("n", "status")
        table.add_column(
            header, justify="left" if left else "right", no_wrap=not wraps, overflow="fold"
        )
    reasons: dict[str, None] = {}
    for c in cells:
        size = ("all" if c["n_train"] is None else f"{c['n_train']}#{c['sample']}",) * sizes
        first = (c["task"], escape(c["method"]), str(c["seed"]), *size, STATUS[c["status"]])
        if "steps" not in c:  # not plannable here (its data is absent): the reason below
            reasons[c["note"]] = None
            table.add_row(*first, "?")
            continue
        flops = c["train_flops"] + c["decode_flops"]
        table.add_row(
            *first, f"{c['steps']:,}", si(c["tokens_trained"]), si(c["tokens_decoded"]),
            si(flops), f"{c['peak_memory_gb']:.2f}", duration(c["seconds"]),
        )  # fmt: skip
    console.print(table)
    t = plan["totals"]
    held = f", {t['held']} held by another runner" if t["held"] else ""
    unplanned = f", {t['unplanned']} without data here" if t["unplanned"] else ""
    console.print(
        f"{t['to_run']} of {t['cells']} cells to run ({t['stored']} stored{held}{unplanned}): "
        f"{t['steps']:,} steps, {si(t['tokens_trained'])} tokens trained and "
        f"{si(t['tokens_decoded'])} decoded (every beam), {si(t['flops'])}FLOPs"
    )
    if t["to_run"] - t["unplanned"] <= 0:
        console.print("nothing to estimate: no cell to run has its data here")
    elif plan["target"] == "this machine":
        console.print(
            f"estimated: {duration(t['wall_seconds'])} wall on this machine "
            f"({duration(t['seconds'])} of cell time); peak {t['peak_memory_gb']:.2f} GB a cell"
        )
    else:
        console.print(
            f"estimated: {t['hours']:.2f} GPU-hours on {escape(plan['target'])}; "
            f"peak {t['peak_memory_gb']:.1f} GB a cell"
        )
    if plan["speed"] and t["to_run"]:
        console.print(f"rates: {escape(plan['speed']['source'])}")
    for note in [*plan["notes"], *reasons]:
        console.print(f"note: {escape(note)}")
