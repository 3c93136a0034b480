"""`bench perf device`: every method's training and decoding speed, the harness against plain
transformers + PEFT in the same run, with MFU from a FLOPs-per-token count and the GPU's peak.
On CPU it runs end to end on mini-tiny at tiny sizes; the FLOPs count is checked against a hand
count; the plain loop is shown to follow the harness's precision (bf16 and fp16 autocast run on
a CPU too); the GPU-only waits are checked with a stand-in for `torch.cuda.synchronize`."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from transformers import GPT2Config, GPT2LMHeadModel

import bench.perf.device
import bench.perf.loops
import bench.perf.machine
from bench.cli import app
from bench.engine.adapted import AdaptedLM, BuildContext, build_method, count
from bench.engine.cell import build
from bench.errors import UserError
from bench.perf.device import ROW_ORDER, measured_methods, plain_equivalent
from bench.perf.flops import Flops, flops_per_token, peak_of
from bench.perf.overhead import _bare_loop, _harness_loop, _overhead_cell, _step_order
from bench.perf.workload import Scale
from bench.spec.method_entry import Method
from bench.spec.registry import METHODS
from tests.perf.test_perf_cli import perf

TINY = Scale(seq_len=16, train_batches=(2,), steps=1, warm=1, decode_batches=(2,),
             new_tokens=2, prompt_tokens=6)  # fmt: skip
KEYS = {"device", "gpu", "model", "precision", "sequence_length", "train_batches", "decode",
        "versions", "machine", "training", "decoding", "peak_tflops", "flops",
        "memory"}  # fmt: skip


def run_command(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`python -m bench perf ARGS` in this process, on CPU at the tiny sizes."""
    monkeypatch.setattr(bench.perf.device, "CPU_SCALE", TINY)
    return perf(monkeypatch, capsys, *args)


@pytest.fixture(scope="module")
def printed() -> dict:
    """`perf device --device cpu --model mini-tiny --peak-tflops 0.5 --json` at the tiny
    sizes."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(bench.perf.device, "CPU_SCALE", TINY)
        result = CliRunner().invoke(
            app, ["perf", "device", "--device", "cpu", "--model", "mini-tiny",
                  "--peak-tflops", "0.5", "--json"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "timing every method" in result.stderr and "deprecated" not in result.stderr
    return json.loads(result.stdout)


def test_every_method_has_a_harness_and_a_plain_row_that_train_the_same(printed):
    assert printed.keys() >= KEYS
    assert printed["device"] == "cpu" and printed["gpu"] is None and printed["precision"] == "fp32"
    assert printed["versions"]["torch"] == torch.__version__
    assert printed["sequence_length"] == TINY.seq_len
    assert "scaled down for a CPU" in printed["scaled"]
    for kind, batches in (("training", TINY.train_batches), ("decoding", TINY.decode_batches)):
        rows = {(row["method"], row["batch"]): row for row in printed[kind]}
        assert set(rows) == {(m, b) for m in ROW_ORDER for b in batches}, kind
        assert [row["method"] for row in printed[kind]][:: len(batches)] == list(ROW_ORDER)
        for row in rows.values():
            assert row["harness"]["tokens_per_s"] > 0 and row["plain"]["tokens_per_s"] > 0
            speeds = row["harness"]["tokens_per_s"] / row["plain"]["tokens_per_s"]
            assert row["ratio"] == pytest.approx(speeds, rel=1e-2, abs=1e-3)
            assert row["harness"]["peak_memory_mib"] is None  # n/a on CPU
            assert row["harness"]["cpu_seconds"] > 0 and row["plain"]["cpu_seconds"] > 0
    for row in printed["training"]:
        assert row["trained"]["harness"] == row["trained"]["plain"] > 0, row["method"]
    plain = {row["method"]: row["plain_loop"] for row in printed["training"]}
    assert "PrefixTuningConfig" in plain["prefix"] and "LoraConfig" in plain["lora"]
    assert "adapters library" in plain["adapter"]


def test_mfu_is_computed_from_the_given_peak_and_n_a_without_one(printed):
    assert printed["peak_tflops"] == 0.5 and printed["peak_source"] == "--peak-tflops"
    for row in printed["training"]:
        assert row["flops_per_token"]["total"] > 0
        for side in ("harness", "plain"):
            flops = row["flops_per_token"]["total"] * row[side]["tokens_per_s"]
            assert row[side]["mfu"] == pytest.approx(flops / 0.5e12, abs=1e-4)
    alone = bench.perf.device.throughput_benchmark("cpu", "mini-tiny", scale=TINY,
                                                  methods=("lora",))  # fmt: skip
    assert [row["method"] for row in alone["training"]] == ["lora"]
    assert alone["peak_tflops"] is None and alone["training"][0]["harness"]["mfu"] is None
    table = bench.perf.device.throughput_table(alone)
    assert "MFU n/a" in table and "n/a on CPU" in table and "lora" in table


def test_cuda_without_a_gpu_is_one_line_and_exit_2(monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run_command(monkeypatch, capsys, "device")  # --device cuda by default
    assert code == 2
    assert "--device cuda: torch" in err and "use --device cpu" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--steps", "2"), "go with --device cuda|cpu"),  # the old spelling, without --device
        (("device", "--device", "cpu", "--model", "random:bart-large"), "decoder-only models"),
        (("device", "--device", "cpu", "--model", "random:gpt5"), "unknown architecture 'gpt5'"),
        (("device", "--device", "cpu", "--peak-tflops", "0"), "--peak-tflops"),
        (("device", "--device", "tpu"), "'tpu' is not one of 'cuda', 'cpu'"),
        (("device", "--steps", "0"), "--steps"),
        (("device", "--grid", "mini"), "No such option '--grid'"),
        (("--device", "cpu", "--model", "random:bart-large"), "decoder-only models"),  # old
    ],
)
def test_bad_options_are_one_line_and_exit_2(monkeypatch, capsys, args, message):
    code, _, err = run_command(monkeypatch, capsys, *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def tiny_model(method: str, **settings: object) -> AdaptedLM:
    """2 blocks of width 8, vocabulary 10: N = 2 x 12 x 8^2 + 8 x 10 = 1,616 matmul weights."""
    torch.manual_seed(0)
    base = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=10, n_positions=32))
    entry = METHODS.get(method)
    return build_method(entry, base, entry.Settings(**settings), BuildContext())


def test_flops_per_token_match_a_hand_count():
    """T = 4 tokens; one layer's attention is 4 d T = 128 FLOPs forward, 256 backward."""
    # Full fine-tuning: 6N + 12LdT = 9,696 + 768.
    assert flops_per_token(tiny_model("finetune"), 4) == Flops(3232 + 256, 3232 + 512, 3232)
    assert flops_per_token(tiny_model("finetune"), 4).total == 6 * 1616 + 12 * 2 * 8 * 4
    # FT-top1: backward through block 1 (768 weights) and the head (80); block 1's gradients.
    top = flops_per_token(tiny_model("finetune-top", k=1), 4)
    assert top == Flops(3488, 2 * (768 + 80) + 256, 2 * 768)
    # A flat prefix of 3: 7 keys per query; nothing of the base trained, gradients reach block 0.
    prefix = flops_per_token(tiny_model("prefix", length=3, flat=True), 4)
    assert prefix == Flops(3232 + 2 * 4 * 8 * 7, 3232 + 2 * 2 * 4 * 8 * 7, 0)
    # LoRA rank 2 on c_attn: A 8x2 and B 2x24 per block, 128 more weights, all trained.
    lora = flops_per_token(tiny_model("lora", rank=2), 4)
    assert lora == Flops(2 * 1744 + 256, 2 * 1744 + 512, 2 * 128)


def test_the_measured_methods_are_those_with_a_plain_equivalent(monkeypatch):
    """Five methods carry one today, in the README's row order; a method without one (prompt
    tuning) is not measured, and another that carries one comes after the five."""
    assert measured_methods() == ROW_ORDER
    assert METHODS.get("prompt").plain is None and "prompt" in METHODS
    with pytest.raises(UserError, match="no plain loop for \\['prompt'\\]"):
        bench.perf.device.throughput_benchmark("cpu", "mini-tiny", methods=("prompt",))
    plugin = type("PluginMethod", (Method,), {"plain": "json:dumps"})
    monkeypatch.setitem(METHODS._entries, "aaa-plugin", plugin)
    assert measured_methods() == (*ROW_ORDER, "aaa-plugin")


@pytest.mark.parametrize("method", ROW_ORDER)
def test_each_plain_equivalent_resolves_and_trains_what_ours_trains(method):
    """The registered "module:function" of each method imports from the method's own folder and
    builds the library's model, training as many parameters as the harness's."""
    entry = METHODS.get(method)
    assert entry.plain == f"bench.methods.{method.replace('-', '_')}.plain:plain_model"
    ours = tiny_model(method)
    base = GPT2LMHeadModel(ours.base.config)
    model, what = plain_equivalent(method, base, ours.derived_settings())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trained == count(ours.trainable_parameters()) > 0 and what


def test_peaks_by_gpu_name():
    assert peak_of("NVIDIA H100 80GB HBM3", "bf16")[0] == 989
    assert peak_of("NVIDIA H100 PCIe", "bf16")[0] == 756
    assert peak_of("NVIDIA H200", "bf16") == (989, "H200 SXM, bf16 dense (datasheet)")
    assert peak_of("NVIDIA A100-SXM4-80GB", "fp32")[0] == 19.5
    assert peak_of("NVIDIA L40S", "bf16")[0] == 362 and peak_of("NVIDIA L4", "bf16")[0] == 121
    assert peak_of("NVIDIA A10", "bf16")[0] == 125 and peak_of("NVIDIA A10G", "bf16")[0] is None
    assert peak_of("Tesla V100-SXM2-16GB", "fp16")[0] == 125
    assert peak_of("Tesla V100-SXM2-16GB", "bf16") == (None, None)  # no bf16 units
    assert peak_of("NVIDIA GeForce RTX 4090", "bf16")[0] == 165.2
    assert peak_of(None, "fp32") == (None, None) and peak_of("Some GPU", "bf16") == (None, None)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_the_plain_loop_trains_in_the_harness_precision(precision):
    """The overhead benchmark's two loops under autocast (bf16, or fp16 with the loss scaler)
    on CPU: the same weights bit for bit, and not those of fp32."""
    fp32_cell, data = _overhead_cell("mini-tiny", 2)
    train = fp32_cell.train.model_copy(update={"precision": precision})
    cell = fp32_cell.model_copy(update={"train": train})
    built = build(cell, {})
    harness = _harness_loop(cell, data, built, 0)
    order = _step_order(built, data, cell.seed, 2)
    bare = _bare_loop(build(cell, {}), order, cell.seed, 0)
    fp32 = _bare_loop(build(fp32_cell, {}), order, cell.seed, 0)
    assert harness.loss == bare.loss
    assert all(torch.equal(harness.weights[k], bare.weights[k]) for k in harness.weights)
    assert any(not torch.equal(fp32.weights[k], bare.weights[k]) for k in bare.weights)


def test_on_a_gpu_the_clock_waits_for_the_device_once(monkeypatch):
    waits: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waits.append(device))
    clock = bench.perf.loops._StepClock(sync_at=2, device=torch.device("cuda"))
    task = clock.add_task("training", total=4)
    for _ in range(4):
        clock.update(task, advance=1)
    assert len(clock.stamps) == 4 and waits == [torch.device("cuda")]
    bench.perf.machine.now(torch.device("cpu"))
    assert len(waits) == 1
