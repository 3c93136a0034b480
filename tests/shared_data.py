"""Where tests find the staged official data and metric vectors (never copied into the repo).

`BENCH_SHARED_DATA` (default: `../shared/data` beside the repository) and `BENCH_METRIC_VECTORS`
(default: `metric-vectors` beside the data). When absent a test is skipped with the reason, except
under CI (`tests.prerequisites`).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.prerequisites import unavailable

REPO = Path(__file__).resolve().parent.parent


def _data_path() -> Path:
    return Path(os.environ.get("BENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


def _present(path: Path, what: str, variable: str) -> Path:
    if path.is_dir():
        return path
    unavailable(f"{what} not found at {path}; set {variable} to it")


def shared_data_dir() -> Path:
    """The official task data (e2e/, webnlg/, dart/, xsum/)."""
    return _present(_data_path(), "shared data", "BENCH_SHARED_DATA")


def metric_vectors_dir() -> Path:
    """System outputs with the official scorers' numbers (e2e/, webnlg/, dart/)."""
    default = _data_path().parent / "metric-vectors"
    path = Path(os.environ.get("BENCH_METRIC_VECTORS", default))
    return _present(path, "metric vectors", "BENCH_METRIC_VECTORS")
