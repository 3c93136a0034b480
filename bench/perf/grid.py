"""`python -m bench perf grid`: how long a grid takes as a user runs it, the README's numbers.

Three runs of the same grid, each in a fresh results directory: cold (an empty $BENCH_CACHE, as
on a fresh machine: the mini LM ships with the package, so nothing is built first), warm (the
cache as the cold run left it), and a rerun of the warm results (every cell skipped).
Wall-clock seconds of the whole command in a process of its own, as a user sees them, not of
the functions inside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cache import cache_root
from bench.perf.machine import machine


def timed_run(grid: str, results: Path, cache: Path, *extra: str, threads: int = 0) -> float:
    """Wall seconds of `python -m bench run --grid GRID` into `results`, with `cache` as
    $BENCH_CACHE (`threads`: torch's thread count, else its default)."""
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


def benchmark(grid: str, cold: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        root = Path(tmp)
        cache = root / "cache" if cold else cache_root()
        seconds: dict[str, float] = {}
        if cold:
            seconds["cold"] = timed_run(grid, root / "cold", cache)
        seconds["warm"] = timed_run(grid, root / "warm", cache)
        seconds["rerun"] = timed_run(grid, root / "warm", cache)
    return {
        "grid": grid,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "machine": machine(),
    }
