"""`python -m bench perf`: the speed benchmark of a grid, as the README reports it.

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

from bench.mini.lm import cache_root


def _timed_run(grid: str, results: Path, cache: Path) -> float:
    env = {**os.environ, "BENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "bench", "run", "--grid", grid, "--results-dir", str(results)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.time() - started


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
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }
