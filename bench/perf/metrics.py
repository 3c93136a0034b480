"""`python -m bench perf metrics`: how long scoring takes, the metric suite in this process and
`bench score` as a user runs it.

The E2E suite on the 630 TGen outputs (the E2E challenge's baseline, whose official scorer takes
18-20 s on 2 cores), then two `bench score` commands each in a fresh process, twice, with their
CPU time (their JVMs' included) and the load average, since a shared machine moves wall time.
Both need the staged official data and metric vectors (`_shared_dirs`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.errors import UserError
from bench.perf.machine import machine


def _shared_dirs() -> tuple[Path, Path]:
    """The staged official data and metric vectors ($BENCH_SHARED_DATA, $BENCH_METRIC_VECTORS;
    by default `../shared/data` and `../shared/metric-vectors` beside the repository)."""
    root = Path(__file__).resolve().parents[2]
    data = Path(os.environ.get("BENCH_SHARED_DATA", root.parent / "shared" / "data"))
    vectors = Path(os.environ.get("BENCH_METRIC_VECTORS", data.parent / "metric-vectors"))
    if not (vectors / "e2e" / "tgen.txt").is_file() or not data.is_dir():
        raise UserError(
            f"no E2E metric vectors at {vectors} (data {data}): set BENCH_SHARED_DATA "
            "(and BENCH_METRIC_VECTORS) to the shared data"
        )
    return data, vectors


# The `bench score` commands the README times: task, split (None: every split the file fits)
# and the metric-vectors file of system outputs.
SCORE_COMMANDS = {
    "e2e_tgen": ("e2e", "test", "e2e/tgen.txt"),
    "webnlg_all_splits": ("webnlg", None, "webnlg/bart-large_webnlg-all.txt"),
}


def metrics_benchmark() -> dict[str, object]:
    """Wall time of the e2e suite in this process (every metric, bootstrap included) on the 630
    TGen outputs, the E2E challenge baseline (the official scorer takes 18-20 s on 2 cores);
    then of two `bench score` commands as a user runs them, each in a process of its own: TGen
    on E2E test, and the WebNLG challenge's 1,862-line file scored on seen, unseen and all."""
    from bench.metrics.suites import score_suite
    from bench.spec.registry import TASKS

    data, vectors = _shared_dirs()
    hypotheses = (vectors / "e2e" / "tgen.txt").read_text(encoding="utf-8").splitlines()
    references = [ex.references for ex in TASKS.get("e2e")().load("test", data)]
    started = time.time()
    scores = score_suite("e2e", hypotheses, references)
    seconds = time.time() - started
    commands = {
        name: _timed_score(data, vectors / file, task, split)
        for name, (task, split, file) in SCORE_COMMANDS.items()
    }
    return {
        "suite": "e2e",
        "inputs": len(hypotheses),
        "seconds": round(seconds, 1),
        "scores": {name: score.value for name, score in scores.items()},
        "commands": commands,
        "machine": machine(),
    }


def _timed_score(data: Path, predictions: Path, task: str, split: str | None) -> dict[str, object]:
    """A `bench score` command run twice, each a fresh process: its wall seconds, its CPU
    seconds (its JVMs' included) and the machine's load average when it started. The first
    run may fill caches (METEOR's paraphrase index, the references' tokens); `seconds` is the
    second's, as every later run by a user."""
    import resource
    import shlex

    if not predictions.is_file():
        raise UserError(f"no system outputs at {predictions}: set BENCH_METRIC_VECTORS")
    split_args = ["--split", split] if split else []
    command = [sys.executable, "-m", "bench", "score", "--task", task, *split_args]
    command += ["--data-dir", str(data), "--predictions", str(predictions), "--json"]
    runs = []
    for _ in range(2):
        load = round(os.getloadavg()[0], 1)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            command,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        runs.append({"seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "load_average": load})
        print(f"bench score --task {task}: {wall:.1f} s ({cpu:.1f} s CPU)", file=sys.stderr)
    shown = shlex.join(["python", *command[1:]])
    return {"command": shown, "first_run": runs[0], **runs[1]}
