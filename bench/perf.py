"""`python -m bench perf`: the speed benchmark of a grid, as the README reports it, and
(`--metrics`) of the E2E metric suite.

Three runs of the same grid, each in a fresh results directory: cold (an empty model cache, so
the mini LM is pretrained first), warm (the cache filled), and a rerun of the warm results
(every cell skipped). Wall-clock seconds of the whole command, as a user sees them.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.errors import UserError
from bench.mini.config import cache_root


def _timed_run(grid: str, results: Path, cache: Path, *extra: str, threads: int = 0) -> float:
    env = {**os.environ, "BENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "bench", "run", "--grid", grid, "--results-dir", str(results),
         *extra],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.time() - started


def executor_benchmark(grid: str) -> dict[str, object]:
    """The grid (warm model cache) three ways: the local executor, one cell after another, on
    all cores (torch's threads) and on one thread; then as Ray tasks, one CPU each, as many at
    once as the machine has cores.

    Two ratios, because they answer two questions. `speedup_same_threads` (one-thread local /
    Ray) is what running cells side by side gains for the same work: both compute the same
    outputs byte for byte. `speedup_vs_all_cores` (all-core local / Ray) is what a user of this
    machine gains over the default, where torch already spreads one cell over every core.
    """
    from bench.grid import load_grid
    from bench.models import prepare_model

    prepare_model(load_grid(grid)[0].model)  # the mini LM built before anything is timed
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        root = Path(tmp)
        local = _timed_run(grid, root / "local", cache_root())
        one_thread = _timed_run(grid, root / "one-thread", cache_root(), threads=1)
        ray = _timed_run(grid, root / "ray", cache_root(), "--executor", "ray")
    return {
        "grid": grid,
        "seconds": {
            "local_all_cores": round(local, 1),
            "local_one_thread": round(one_thread, 1),
            "ray": round(ray, 1),
        },
        "speedup_same_threads": round(one_thread / ray, 2),
        "speedup_vs_all_cores": round(local / ray, 2),
        "machine": _machine(),
    }


def benchmark(grid: str, cold: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        root = Path(tmp)
        cache = root / "cache" if cold else cache_root()
        seconds: dict[str, float] = {}
        if cold:
            seconds["cold"] = _timed_run(grid, root / "cold", cache)
        seconds["warm"] = _timed_run(grid, root / "warm", cache)
        seconds["rerun"] = _timed_run(grid, root / "warm", cache)
    return {
        "grid": grid,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "machine": _machine(),
    }


def _machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _shared_dirs() -> tuple[Path, Path]:
    """The staged official data and metric vectors ($BENCH_SHARED_DATA, $BENCH_METRIC_VECTORS;
    by default `../shared/data` and `../shared/metric-vectors` beside the repository)."""
    root = Path(__file__).resolve().parent.parent
    data = Path(os.environ.get("BENCH_SHARED_DATA", root.parent / "shared" / "data"))
    vectors = Path(os.environ.get("BENCH_METRIC_VECTORS", data.parent / "metric-vectors"))
    if not (vectors / "e2e" / "tgen.txt").is_file() or not data.is_dir():
        raise UserError(
            f"no E2E metric vectors at {vectors} (data {data}): set BENCH_SHARED_DATA "
            "(and BENCH_METRIC_VECTORS) to the shared data"
        )
    return data, vectors


def metrics_benchmark() -> dict[str, object]:
    """Wall time of the e2e suite (every metric, bootstrap included) on the 630 TGen outputs,
    the E2E challenge baseline; the official scorer takes 18-20 s on 2 cores."""
    from bench.metrics.suites import score_suite
    from bench.registry import TASKS

    data, vectors = _shared_dirs()
    hypotheses = (vectors / "e2e" / "tgen.txt").read_text(encoding="utf-8").splitlines()
    references = [ex.references for ex in TASKS.get("e2e")().load("test", data)]
    started = time.time()
    scores = score_suite("e2e", hypotheses, references)
    seconds = time.time() - started
    return {
        "suite": "e2e",
        "inputs": len(hypotheses),
        "seconds": round(seconds, 1),
        "scores": {name: score.value for name, score in scores.items()},
        "machine": _machine(),
    }
