"""`python -m bench perf gate`: the regression gate's error rates, measured on stored seeds.

The gate (`bench.results.compare`, `bench.metrics.significance`) claims a family-wise false-alarm
rate of at most 2.5% per run. This measures it, and its power, by simulation from pools: results
directories of the same grid run with many seeds (10 or more per cell), e.g. once on one thread
per cell and once on two. Each simulated gate run draws k seeds per side and tests every row
(experiment, split, metric) as `bench run --check` does, Holm's correction included:

- false alarms, on unchanged code: the same seeds from two pools (other thread counts: a CI run
  against a baseline made elsewhere), or disjoint seed sets from one pool or two; seeds pair up
  as in `bench.results.compare` (the same seeds on the same hardware); a run that flags any
  regression is a false alarm;
- power, against injected regressions of one method: its predictions cut to their first part
  (a decoding bug: 2% to 50% of each prediction's words dropped), and, given a `weak` pool, the
  method as trained there (e.g. with a tenth of its steps); a run that flags a regression of
  that method detects it. The smallest mean BLEU drop detected in 90% of runs is the gate's
  resolution at k seeds.

Scores are resampled once per cell (the gate's own resamples), so thousands of runs take seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import UserError
from bench.metrics.bootstrap import resample_indices
from bench.metrics.significance import ALPHA, SeedScores, compare_seeds, regressions
from bench.results.bundle import CellKey, CellResults, load_source

CUTS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)  # share of each prediction's words dropped
MIN_SEEDS = 10
Row = tuple[CellKey, str, str]  # experiment (seed -1), split, metric


@dataclass
class Pool:
    """One results directory's cells as resampled scores: row -> seed -> scores."""

    name: str
    rows: dict[Row, dict[int, SeedScores]]
    higher: dict[Row, bool]
    factor: dict[Row, float]
    hardware: set[str] = field(default_factory=set)  # the cells' fingerprints

    def seeds(self) -> list[int]:
        return sorted(set.intersection(*(set(s) for s in self.rows.values())))


def pool_of(name: str, cells: Sequence[CellResults]) -> Pool:
    """The cells' scores, resampled as the gate resamples them."""
    from bench.metrics.suites import SUITES, paper_factor
    from bench.results.compare import fingerprint
    from bench.spec.registry import TASKS

    pool = Pool(name, {}, {}, {}, {fingerprint(cell.provenance) for cell in cells})
    for cell in cells:
        suite_name = TASKS.get(cell.config["task"])().suite
        suite = SUITES.get(suite_name)
        for split, outputs in cell.outputs.items():
            stats = suite.stats(outputs.predictions, outputs.references)
            indices = resample_indices(len(outputs.predictions))
            for name, array in stats.items():
                if not isinstance(array, np.ndarray):
                    continue
                metric = suite.by_name[name].metric
                row = (replace(cell.key, seed=-1), split, name)
                pool.rows.setdefault(row, {})[cell.key.seed] = SeedScores.of(metric, array, indices)
                pool.higher[row] = metric.higher_is_better
                pool.factor[row] = paper_factor(suite_name, name)
    return pool


def cut(cell: CellResults, share: float) -> CellResults:
    """The cell with each prediction cut to its first (1 - share) words."""
    outputs = {}
    for split, out in cell.outputs.items():
        kept = [
            " ".join(p.split()[: math.ceil(len(p.split()) * (1 - share))]) for p in out.predictions
        ]
        outputs[split] = replace(out, predictions=kept)
    return replace(cell, outputs=outputs)


def gate_run(
    base: Pool, cand: Pool, base_seeds: Sequence[int], cand_seeds: Sequence[int]
) -> list[tuple[Row, float, bool]]:
    """One simulated `--check`: (row, delta on the paper scale, regression) per shared row."""
    rows = [row for row in base.rows if row in cand.rows]
    paired = list(base_seeds) == list(cand_seeds) and base.hardware == cand.hardware
    tests = [
        compare_seeds(
            [base.rows[row][s] for s in base_seeds],
            [cand.rows[row][s] for s in cand_seeds],
            base.higher[row],
            paired=paired,
        )
        for row in rows
    ]
    decided = regressions([t.p_worse for t in tests])
    return [
        (row, t.delta * base.factor[row], flag)
        for row, t, (_, flag) in zip(rows, tests, decided, strict=True)
    ]


def _rate(hits: int, runs: int) -> dict[str, float]:
    """A rate with its 95% Wilson interval."""
    if runs == 0:
        return {"rate": float("nan"), "low": float("nan"), "high": float("nan"), "runs": 0}
    p, z = hits / runs, 1.96
    centre = (p + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / (1 + z * z / runs)
    return {
        "rate": p,
        "low": max(0.0, centre - half),
        "high": min(1.0, centre + half),
        "runs": runs,
    }


def _draw(
    rng: np.random.Generator, seeds: list[int], k: int, avoid: Sequence[int] = ()
) -> list[int]:
    free = [s for s in seeds if s not in avoid]
    return sorted(int(s) for s in rng.choice(free, size=k, replace=False))


def false_alarms(
    pools: list[Pool], k: int, draws: int, rng: np.random.Generator
) -> dict[str, dict[str, float]]:
    """Per scenario: the share of gate runs on unchanged code that flag a regression."""
    scenarios: dict[str, tuple[Pool, Pool, bool]] = {
        f"other seeds ({pools[0].name})": (pools[0], pools[0], False)
    }
    for other in pools[1:]:
        scenarios[f"same seeds, {pools[0].name} vs {other.name}"] = (pools[0], other, True)
        scenarios[f"other seeds, {pools[0].name} vs {other.name}"] = (pools[0], other, False)
    out = {}
    for name, (base, cand, same) in scenarios.items():
        seeds = sorted(set(base.seeds()) & set(cand.seeds()))
        if len(seeds) < (k if same else 2 * k):
            continue
        alarms = 0
        for _ in range(draws):
            base_seeds = _draw(rng, seeds, k)
            cand_seeds = base_seeds if same else _draw(rng, seeds, k, base_seeds)
            alarms += any(flag for _, _, flag in gate_run(base, cand, base_seeds, cand_seeds))
        out[name] = _rate(alarms, draws)
    return out


def detection(
    base: Pool, cand: Pool, method: str, k: int, draws: int, rng: np.random.Generator
) -> dict[str, Any]:
    """The share of gate runs that flag a regression of `method`, and its mean BLEU drop."""
    seeds = sorted(set(base.seeds()) & set(cand.seeds()))
    if len(seeds) < k:
        raise UserError(
            f"{cand.name}: {len(seeds)} seeds in common with {base.name}; {k} are drawn per run"
        )
    caught, drops = 0, []
    for _ in range(draws):
        chosen = _draw(rng, seeds, k)
        result = gate_run(base, cand, chosen, chosen)
        mine = [(row, delta, flag) for row, delta, flag in result if row[0].method == method]
        caught += any(flag for _, _, flag in mine)
        drops += [-delta for row, delta, _ in mine if row[2] == "bleu"]
    return {**_rate(caught, draws), "bleu_drop": float(np.mean(drops)) if drops else float("nan")}


def gate_benchmark(
    pools: Sequence[Path],
    method: str,
    weak: Path | None = None,
    seed_counts: Sequence[int] = (3, 5),
    draws: int = 400,
) -> dict[str, Any]:
    """False alarms and power of the gate from stored pools of seeds (see the module's doc)."""
    sources = [load_source(Path(path)) for path in pools]
    loaded = [pool_of(str(path), source.cells) for path, source in zip(pools, sources, strict=True)]
    for pool in loaded:
        if len(pool.seeds()) < MIN_SEEDS:
            raise UserError(
                f"{pool.name}: {len(pool.seeds())} seeds on every cell; a pool needs "
                f"{MIN_SEEDS} or more (run the grid with seeds: [0, 1, ..., 11])"
            )
    if not any(row[0].method == method for row in loaded[0].rows):
        raise UserError(f"{pools[0]}: no cells of method {method!r} to inject a regression into")
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {"pools": [p.name for p in loaded], "method": method, "alpha": ALPHA}
    result["draws"] = draws
    result["false_alarms"] = {k: false_alarms(loaded, k, draws, rng) for k in seed_counts}
    mine = [cell for cell in sources[0].cells if cell.config["method"] == method]
    cuts = {
        share: _merged(loaded[0], pool_of(f"cut {share:.0%}", [cut(c, share) for c in mine]))
        for share in CUTS
    }
    result["cut_predictions"] = {
        k: {
            share: detection(loaded[0], pool, method, k, draws, rng) for share, pool in cuts.items()
        }
        for k in seed_counts
    }
    if weak is not None:
        weakened = pool_of(str(weak), load_source(weak).cells)
        result["weak_pool"] = weakened.name
        result["weak"] = {
            k: detection(loaded[0], _merged(loaded[0], weakened), method, k, draws, rng)
            for k in seed_counts
        }
    result["smallest_caught_90"] = {
        k: min(
            (d["bleu_drop"] for d in result["cut_predictions"][k].values() if d["rate"] >= 0.9),
            default=None,
        )
        for k in seed_counts
    }
    return result


def _merged(base: Pool, weak: Pool) -> Pool:
    """The base pool with the weak pool's rows in place of its own (the weak method's)."""
    return Pool(
        weak.name, {**base.rows, **weak.rows}, {**base.higher, **weak.higher},
        {**base.factor, **weak.factor}, base.hardware | weak.hardware,
    )  # fmt: skip


def gate_lines(result: dict[str, Any]) -> str:
    """The benchmark as a few readable lines."""
    lines = [f"gate error rates, {result['draws']} simulated runs each (alpha {result['alpha']})"]
    for k, scenarios in result["false_alarms"].items():
        for name, rate in scenarios.items():
            lines.append(f"  {k} seeds, false alarms, {name}: {_percent(rate)}")
    for k, cuts in result["cut_predictions"].items():
        for share, d in cuts.items():
            lines.append(
                f"  {k} seeds, {result['method']} cut by {share:.0%}: "
                f"BLEU -{d['bleu_drop']:.2f}, caught {_percent(d)}"
            )
        lines.append(
            f"  {k} seeds: smallest BLEU drop caught 90%: {result['smallest_caught_90'][k]}"
        )
    for k, d in result.get("weak", {}).items():
        lines.append(
            f"  {k} seeds, {result['method']} as in {result['weak_pool']}: "
            f"BLEU -{d['bleu_drop']:.2f}, caught {_percent(d)}"
        )
    return "\n".join(lines)


def _percent(rate: dict[str, float]) -> str:
    return f"{rate['rate']:.1%} [{rate['low']:.1%}, {rate['high']:.1%}]"
