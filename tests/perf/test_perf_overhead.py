"""`bench perf overhead`: the harness's training loop is timed against a plain PyTorch loop
that trains the same thing (same weights, batches, order, dropout masks), so the two tokens/s
measure the same work and their ratio is the harness's overhead alone."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import bench.perf.overhead
from bench.cli import app
from bench.perf.overhead import overhead_benchmark, overhead_lines

KEYS = {"harness_tokens_per_s", "bare_tokens_per_s", "ratio", "cpu_ratio", "identical", "tokens"}


@pytest.fixture(scope="module")
def tiny_result() -> dict:
    return overhead_benchmark("mini-tiny", steps=3, warm=1, rounds=1)


def test_both_loops_train_the_same_weights_and_losses(tiny_result):
    assert tiny_result.keys() >= KEYS
    assert tiny_result["identical"] is True
    losses = tiny_result["final_loss"]
    assert losses["harness"] == losses["bare"] and 0 < losses["harness"] < 20
    assert tiny_result["timed_steps"] == 3 and tiny_result["warm_steps"] == 1
    assert tiny_result["tokens"] > 3 * 16 * 10  # three steps of 16 examples, 10+ tokens each
    harness, bare = tiny_result["harness_tokens_per_s"], tiny_result["bare_tokens_per_s"]
    assert harness > 0 and bare > 0
    assert tiny_result["ratio"] == pytest.approx(harness / bare, abs=2e-3)
    assert tiny_result["cpu_ratio"] > 0


def test_a_loop_fed_other_batches_is_reported_as_not_identical(monkeypatch):
    """The check has teeth: the bare loop on the same batches in reverse order ends elsewhere."""
    step_order = bench.perf.overhead._step_order
    monkeypatch.setattr(
        bench.perf.overhead, "_step_order", lambda *args: list(reversed(step_order(*args)))
    )
    result = overhead_benchmark("mini-tiny", steps=2, warm=0, rounds=1)
    assert result["identical"] is False
    assert result["final_loss"]["harness"] != result["final_loss"]["bare"]
    assert "NO: the comparison is not fair" in overhead_lines(result)


def test_the_command_prints_a_summary_or_json(monkeypatch, tiny_result):
    monkeypatch.setattr(bench.perf.overhead, "overhead_benchmark", lambda: tiny_result)
    summary = CliRunner().invoke(app, ["perf", "overhead"])
    assert summary.exit_code == 0, summary.output
    assert "harness_tokens_per_s" in summary.stdout and "yes, bit for bit" in summary.stdout
    as_json = CliRunner().invoke(app, ["perf", "overhead", "--json"])
    assert as_json.exit_code == 0, as_json.output
    printed = json.loads(as_json.stdout)
    assert printed.keys() >= KEYS and printed["ratio"] == tiny_result["ratio"]
    old = CliRunner().invoke(app, ["perf", "--overhead", "--json"])  # the old spelling
    assert old.exit_code == 0 and json.loads(old.stdout) == printed
    assert "use 'bench perf overhead --json'" in old.stderr
