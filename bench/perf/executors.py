"""`python -m bench perf executors`: what running cells side by side (worker processes, the
default on a CPU, or Ray) gains over the local executor, which runs one cell after another,
timed on whole `bench run` commands."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.cache import cache_root
from bench.perf.grid import timed_run
from bench.perf.machine import machine


def executor_benchmark(grid: str) -> dict[str, object]:
    """The grid four ways: the local executor, one cell after another, on all cores (torch's
    threads) and on one thread; then side by side, one thread per cell, as many at once as the
    machine has cores: in worker processes (the default) and as Ray tasks.

    Two ratios, because they answer two questions. `speedup_same_threads` (one-thread local /
    processes) is what running cells side by side gains for the same work: both compute the
    same outputs byte for byte. `speedup_vs_all_cores` (all-core local / processes) is what the
    default gains over one cell at a time spread over every core.
    """
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        root = Path(tmp)
        local = timed_run(grid, root / "local", cache_root(), "--executor", "local")
        one_thread = timed_run(grid, root / "one", cache_root(), "--executor", "local", threads=1)
        processes = timed_run(grid, root / "process", cache_root(), "--executor", "process")
        ray = timed_run(grid, root / "ray", cache_root(), "--executor", "ray")
    return {
        "grid": grid,
        "seconds": {
            "local_all_cores": round(local, 1),
            "local_one_thread": round(one_thread, 1),
            "process": round(processes, 1),
            "ray": round(ray, 1),
        },
        "speedup_same_threads": round(one_thread / processes, 2),
        "speedup_vs_all_cores": round(local / processes, 2),
        "machine": machine(),
    }
