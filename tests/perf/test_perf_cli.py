"""`python -m bench perf`: a subcommand per benchmark (`grid`, `overhead`, `metrics`,
`executors`, `contention`, `gate`, `device`), each parsing its options and calling its
benchmark; the old flag spellings still run the same benchmark with a one-line note naming the
new spelling. The benchmarks themselves are stand-ins here (they take minutes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import bench.perf.contention
import bench.perf.device
import bench.perf.executors
import bench.perf.gate
import bench.perf.grid
import bench.perf.metrics
import bench.perf.overhead
from bench.cli import main


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, tuple, dict]]:
    """Every benchmark replaced by one that notes its call and returns a small dict."""
    seen: list[tuple[str, tuple, dict]] = []

    def fake(name: str):
        def run(*args: Any, **kwargs: Any) -> dict:
            kwargs.pop("log", None)
            seen.append((name, args, kwargs))
            return {"benchmark": name}

        return run

    for module, function in [
        (bench.perf.grid, "benchmark"),
        (bench.perf.overhead, "overhead_benchmark"),
        (bench.perf.metrics, "metrics_benchmark"),
        (bench.perf.executors, "executor_benchmark"),
        (bench.perf.contention, "contention_benchmark"),
        (bench.perf.gate, "gate_benchmark"),
        (bench.perf.device, "throughput_benchmark"),
    ]:
        monkeypatch.setattr(module, function, fake(function))
    monkeypatch.setattr(bench.perf.overhead, "overhead_lines", lambda result: "SUMMARY")
    monkeypatch.setattr(bench.perf.device, "throughput_table", lambda result: "TABLE")
    monkeypatch.setattr(bench.perf.gate, "gate_lines", lambda result: "LINES")
    return seen


def perf(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`python -m bench perf ARGS` through `bench.cli.main`: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["bench", "perf", *args])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


DEVICE = {"model": None, "peak_tflops": None, "steps": None, "new_tokens": None}
SUBCOMMANDS = [
    (("grid",), "benchmark", ("mini",), {"cold": True}, None),
    (("grid", "--grid", "mini", "--warm-only"), "benchmark", ("mini",), {"cold": False}, None),
    (("overhead",), "overhead_benchmark", (), {}, "SUMMARY"),
    (("overhead", "--json"), "overhead_benchmark", (), {}, None),
    (("metrics",), "metrics_benchmark", (), {}, None),
    (("executors", "--grid", "mini"), "executor_benchmark", ("mini",), {}, None),
    (("contention",), "contention_benchmark", ("mini",), {}, None),
    (
        ("gate", "--pool", "p1", "--pool", "p2", "--weak", "w", "--draws", "50"),
        "gate_benchmark",
        ((Path("p1"), Path("p2")), "prefix", Path("w")),
        {"draws": 50},
        "LINES",
    ),
    (("gate", "--pool", "p1", "--json"), "gate_benchmark", ((Path("p1"),), "prefix", None),
     {"draws": 400}, None),
    (("device",), "throughput_benchmark", ("cuda",), DEVICE, "TABLE"),
    (
        ("device", "--device", "cpu", "--model", "mini-tiny", "--peak-tflops", "2.5",
         "--steps", "3", "--new-tokens", "4", "--json"),
        "throughput_benchmark",
        ("cpu",),
        {"model": "mini-tiny", "peak_tflops": 2.5, "steps": 3, "new_tokens": 4},
        None,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("args", "function", "positional", "options", "summary"), SUBCOMMANDS)
def test_each_subcommand_parses_and_calls_its_benchmark(
    monkeypatch, capsys, calls, args, function, positional, options, summary
):
    code, out, err = perf(monkeypatch, capsys, *args)
    assert code == 0, err
    assert calls == [(function, positional, options)]
    if summary:
        assert out.strip() == summary
    else:
        assert json.loads(out) == {"benchmark": function}
    assert "deprecated" not in err


def test_out_writes_the_json(monkeypatch, capsys, calls, tmp_path):
    for command in ("grid", "overhead", "metrics", "executors", "device"):
        out = tmp_path / f"{command}.json"
        code, printed, err = perf(monkeypatch, capsys, command, "--out", str(out))
        assert code == 0, err
        assert json.loads(out.read_text())["benchmark"] == calls[-1][0]
        assert printed.strip() in ("SUMMARY", "TABLE") or json.loads(printed) == json.loads(
            out.read_text()
        )


OLD_SPELLINGS = [
    ((), "benchmark", "perf grid"),
    (("--grid", "mini", "--warm-only"), "benchmark", "perf grid --grid mini --warm-only"),
    (("--overhead",), "overhead_benchmark", "perf overhead"),
    (("--overhead", "--json"), "overhead_benchmark", "perf overhead --json"),
    (("--metrics",), "metrics_benchmark", "perf metrics"),
    (("--executors",), "executor_benchmark", "perf executors"),
    (("--executors", "--grid", "mini"), "executor_benchmark", "perf executors --grid mini"),
    (
        ("--device", "cpu", "--model", "mini-tiny", "--json"),
        "throughput_benchmark",
        "perf device --device cpu --model mini-tiny --json",
    ),
]


@pytest.mark.parametrize(("args", "function", "new"), OLD_SPELLINGS)
def test_old_spellings_still_work_with_a_one_line_note(
    monkeypatch, capsys, calls, args, function, new
):
    code, _, err = perf(monkeypatch, capsys, *args)
    assert code == 0, err
    assert [call[0] for call in calls] == [function]
    notes = [line for line in err.splitlines() if "deprecated" in line]
    old = " ".join(("bench perf", *args))
    assert notes == [f"note: '{old}' is deprecated; use 'bench {new}'"]


def test_old_and_new_spellings_call_the_benchmark_alike(monkeypatch, capsys, calls):
    perf(monkeypatch, capsys, "--overhead", "--json")
    perf(monkeypatch, capsys, "overhead", "--json")
    perf(monkeypatch, capsys, "--device", "cpu", "--steps", "2")
    perf(monkeypatch, capsys, "device", "--device", "cpu", "--steps", "2")
    assert calls[0] == calls[1] and calls[2] == calls[3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("device", "--device", "tpu"), "'tpu' is not one of 'cuda', 'cpu'"),
        (("device", "--peak-tflops", "0"), "--peak-tflops"),
        (("device", "--warm-only"), "No such option '--warm-only'"),
        (("overhead", "--grid", "mini"), "No such option '--grid'"),
        (("grid", "--grid", "nope"), "unknown grid 'nope'"),
        (("executors", "--grid", "nope"), "unknown grid 'nope'"),
        (("gird",), "No such command 'gird'"),
        (("--device", "tpu"), "'tpu' is not one of 'cuda', 'cpu'"),  # old spelling: no note
        (("--model", "mini"), "go with --device cuda|cpu"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, calls, args, message):
    code, _, err = perf(monkeypatch, capsys, *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert calls == []


def test_help_lists_the_subcommands(monkeypatch, capsys):
    code, out, _ = perf(monkeypatch, capsys, "--help")
    assert code == 0
    for command in ("grid", "overhead", "metrics", "executors", "device"):
        assert f"\n  {command} " in out
    code, out, _ = perf(monkeypatch, capsys, "device", "--help")
    assert code == 0 and "--device [cuda|cpu]" in out and "--peak-tflops" in out
