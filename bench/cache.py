"""Where the harness keeps what it derives once and reuses: METEOR's parsed paraphrase index and
the references' tokens (`bench.metrics`), downloaded task data (`bench.data.files`)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$BENCH_CACHE, or ~/.cache/bench."""
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))
