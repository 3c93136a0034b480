"""`python -m bench perf contention`: how much slower a cell runs beside other CPU-bound work.

Users run grids on laptops and shared nodes. Torch's OpenMP threads spin while they wait for
each other; when another process holds a core, a spinning thread burns the time its partner
needs, and a cell can run many times slower than on a quiet machine. The default executor runs
each cell on one thread (`bench.run.process_executor`), which has no partner to wait for.

One cell of the grid (its first task, method and seed) is run as `bench run` runs it, four ways:
with the default executor and with the local one on all cores, each on a quiet machine and
beside one busy process (a Python loop, one core's worth of work). The cell's own seconds
(training, decoding, scoring: the store's timings, not the process start) give the ratios.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.cache import cache_root
from bench.perf.grid import timed_run
from bench.perf.machine import machine
from bench.spec.grid import load_grid, preset_path
from bench.spec.strict_yaml import load_yaml

BUSY_LOOP = "while True: pass"
BOUND = 2.5  # the most a cell may slow down beside one busy process (issue 25)


def one_cell_grid(grid: str, folder: Path) -> Path:
    """The grid cut to its first task, method and seed, as a YAML file in `folder`."""
    load_grid(grid)  # bad input fails here, before minutes of work
    path = preset_path(grid)
    raw = load_yaml(path.read_text(encoding="utf-8"), str(path))
    raw.update(name="contention", tasks=raw["tasks"][:1], methods=raw["methods"][:1])
    raw["seeds"] = raw.get("seeds", [0])[:1]
    raw.pop("claims", None)  # they name methods and tasks the cut grid may no longer have
    out = folder / "one-cell.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def cell_seconds(results: Path) -> float:
    """The finished cell's own seconds, from the store."""
    db = sqlite3.connect(results / "bench.sqlite")
    (timings,) = db.execute("SELECT timings FROM runs WHERE status = 'done'").fetchone()
    db.close()
    return round(sum(json.loads(timings).values()), 1)


def contention_benchmark(grid: str = "mini") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        root = Path(tmp)
        cell = one_cell_grid(grid, root)
        seconds: dict[str, dict[str, float]] = {}
        for executor in ("process", "local"):
            seconds[executor] = {}
            for load in ("quiet", "busy"):
                results = root / f"{executor}-{load}"
                busy = (
                    subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if load == "busy" else None
                )
                try:
                    timed_run(str(cell), results, cache_root(), "--executor", executor)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                seconds[executor][load] = cell_seconds(results)
    slowdown = {name: round(s["busy"] / s["quiet"], 2) for name, s in seconds.items()}
    return {
        "grid": grid,
        "cell": "first task, method and seed",
        "seconds": seconds,
        "slowdown_beside_one_busy_process": slowdown,
        "bound": BOUND,
        "default_within_bound": slowdown["process"] <= BOUND,
        "machine": machine(),
    }
