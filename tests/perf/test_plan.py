"""`bench plan` and `run --dry-run`: a grid's cells, their status, work, FLOPs and time, read
from the store without writing it; the FLOP model against torch's own FLOP counter."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BartConfig, BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel

from bench.engine.adapted import Batch, BuildContext, build_method
from bench.engine.generation import beam_search
from bench.perf.flops import decode_flops, example_flops
from bench.perf.plan import ASSUMED_MFU, Target, plan_grid, schedule
from bench.results.store import Store
from bench.spec.registry import METHODS
from bench.spec.settings import Cell, DecodeConfig
from tests.runs import bench_here, snapshot
from tests.shared_data import shared_data_dir


def _base(arch: str):
    torch.manual_seed(0)
    if arch == "gpt2":
        config = GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=100, n_positions=64)
        return GPT2LMHeadModel(config)
    config = BartConfig(
        vocab_size=100, d_model=64, encoder_layers=2, decoder_layers=2, max_position_embeddings=64,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
        decoder_ffn_dim=128,
    )  # fmt: skip
    return BartForConditionalGeneration(config)


METHOD_CASES = [
    ("finetune", {}, 0.01),
    ("finetune-top", {"k": 1}, 0.1),
    ("lora", {"rank": 4}, 0.12),
    ("prefix", {"length": 5, "flat": True}, 0.17),
    ("prompt", {"length": 5}, 0.01),  # a decoder-only method
]


@pytest.mark.parametrize(
    ("arch", "method", "settings", "tolerance"),
    [
        (arch, *case)
        for arch in ("gpt2", "bart")
        for case in METHOD_CASES[: 5 if arch == "gpt2" else 4]
    ],
)
def test_training_flops_match_torchs_flop_counter(arch, method, settings, tolerance):
    """One training step of a 12 + 8 token example: the FLOP model against what
    `torch.utils.flop_counter` counts in the forward and backward (matrix multiplies and
    attention). The model's deliberate differences: an upper bound at the lowest trained block,
    BART's cross-attention keys and values counted per target row."""
    entry = METHODS.get(method)
    model = build_method(entry, _base(arch), entry.Settings(**settings), BuildContext())
    source, target = 12, 8
    ids = torch.randint(0, 100, (1, source + target))
    if arch == "gpt2":
        batch = Batch(ids, torch.ones_like(ids), ids)
    else:
        src, tgt = ids[:, :source], ids[:, source:]
        batch = Batch(tgt, torch.ones_like(tgt), tgt, (src, torch.ones_like(src)))
    model.train()
    with FlopCounterMode(display=False) as counter:
        model.training_loss(batch).backward()
    counted = counter.get_total_flops()
    estimate = example_flops(model, source, target).total
    assert abs(estimate / counted - 1) <= tolerance, (estimate, counted)
    if arch == "gpt2" and method == "finetune":
        assert estimate == counted  # PaLM's 6N + 12LdT, exactly what torch runs


@pytest.mark.parametrize(
    ("arch", "method", "settings", "tolerance"),
    [
        ("gpt2", "finetune", {}, 0.01),
        ("gpt2", "prefix", {"length": 5, "flat": True}, 0.01),
        ("gpt2", "prompt", {"length": 5, "flat": True}, 0.01),
        ("bart", "finetune", {}, 0.05),
        ("bart", "prefix", {"length": 5, "flat": True}, 0.05),
    ],
)
def test_decoding_flops_match_torchs_flop_counter(arch, method, settings, tolerance):
    """The harness's beam search (3 beams, 6 new tokens, no early end) on a 12-token prompt:
    the FLOP model against `torch.utils.flop_counter` (eager attention, which it counts). The
    deliberate differences: BART's cross-attention keys and values, computed once from the
    source, counted per decoded row; a prompt's embeddings left out (once per batch)."""
    entry = METHODS.get(method)
    base = _base(arch)
    base.config._attn_implementation = "eager"  # the counter does not see SDPA on a CPU
    model = build_method(entry, base, entry.Settings(**settings), BuildContext()).eval()
    prompt, new, beams = 12, 6, 3
    ids = torch.randint(3, 100, (1, prompt))
    config = DecodeConfig(num_beams=beams, max_new_tokens=new, min_new_tokens=new)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        (hypothesis,) = beam_search(model.scorer(), ids, torch.ones_like(ids), 2, config)
    assert len(hypothesis.tokens) == new
    counted = counter.get_total_flops()
    estimate = decode_flops(model, prompt, new, beams)
    assert abs(estimate / counted - 1) <= tolerance, (estimate, counted)
    if arch == "gpt2" and method != "prompt":
        assert estimate == counted  # the prompt read once, the beams sharing its cache


def test_schedule_puts_cells_on_free_workers_after_their_dependencies():
    cells = [_cell(seed) for seed in range(3)]
    hybrid = cells[2].model_copy(update={"depends": {"prefix": cells[0].id}})
    seconds = {cells[0].id: 10.0, cells[1].id: 4.0, hybrid.id: 1.0}
    assert schedule([cells[0], cells[1], hybrid], seconds, workers=2) == 11.0
    assert schedule([cells[0], cells[1], hybrid], seconds, workers=1) == 15.0


def _cell(seed: int) -> Cell:
    return Cell(
        task="mini-e2e", task_version="1", splits=("test",), eval_limit=None, method="finetune",
        label="finetune", settings={}, model="mini-tiny", checkpoint="x", seed=seed, n_train=None,
        train={}, decode={},
    )  # fmt: skip


def test_the_plan_of_a_finished_grid_matches_what_ran(reference, monkeypatch, capsys):
    """Every cell of the run tiny grid is stored; its planned steps are the steps it trained;
    changed settings are cells to run, priced by the finished cells' rates; nothing written."""
    grid, results = reference
    before = snapshot(results)
    plan = plan_grid(grid, Target(), results_dir=results)
    db = sqlite3.connect(results / "bench.sqlite")
    for cell in plan.cells:
        steps = db.execute(
            "SELECT COUNT(*) FROM losses WHERE cell=? AND kind='train'", (cell.cell.id,)
        ).fetchone()[0]
        assert cell.status == "stored" and cell.work.steps == steps > 0
        assert cell.train_flops > 0 and cell.decode_flops > 0 and cell.memory_gb > 0
    db.close()
    assert plan.totals()["to_run"] == 0 and plan.totals()["seconds"] == 0
    changed = plan_grid(grid, Target(), results_dir=results, overrides=("train.epochs=2",))
    assert {c.status for c in changed.cells} == {"to run"}
    assert [c.work.steps for c in changed.cells] == [2 * c.work.steps for c in plan.cells]
    assert changed.speed.source == f"{len(plan.cells)} finished cells of this model"
    assert all(c.seconds > changed.speed.fixed for c in changed.cells)
    assert changed.wall_seconds > max(c.seconds for c in changed.cells)
    code, out, err = bench_here(
        monkeypatch, capsys, "plan", str(grid), "--results-dir", str(results), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["totals"]["stored"] == len(plan.cells)
    assert snapshot(results) == before


def test_a_cell_held_by_a_live_runner_is_held(tmp_path, tiny_grid):
    plan = plan_grid(tiny_grid, Target(gpu="H100"), results_dir=tmp_path / "r")
    store = Store(tmp_path / "r" / "bench.sqlite")
    first = plan.cells[0].cell
    store.start_cell(first.id, first.model_dump(mode="json"), owner=f"here:{os.getpid()}")
    store.close()
    again = plan_grid(tiny_grid, Target(gpu="H100"), results_dir=tmp_path / "r")
    assert [c.status for c in again.cells][:2] == ["held", "to run"]


def test_dry_run_calibrates_here_and_writes_nothing(tmp_path, tiny_grid, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    code, _, err = bench_here(
        monkeypatch, capsys, "run", "--grid", str(tiny_grid), "--results-dir",
        str(tmp_path / "r"), "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    assert not (tmp_path / "r").exists()
    assert "4 of 4 cells to run" in err and "wall on this machine" in err
    assert "rates: a calibration here: 8 steps and 8 inputs of mini-e2e" in err
    assert max(len(line) for line in err.splitlines()) <= 80


def test_paper_table1_on_an_h100_lists_every_cell(monkeypatch, capsys, tmp_path):
    """The issue's command: every cell with steps, FLOPs and hours, at the datasheet peak and
    the stated MFU; DART's cells say why they are not planned where its files are absent."""
    data = shared_data_dir()
    code, out, err = bench_here(
        monkeypatch, capsys, "plan", "paper-table1", "--gpu", "H100", "--json",
        "--data-dir", str(data), "--results-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads(out)
    assert len(plan["cells"]) == 15 and plan["target"] == "H100"
    assert f"x MFU {ASSUMED_MFU:.2f} (assumed" in plan["speed"]["source"]
    rate = 1 / (989e12 * ASSUMED_MFU)  # H100 SXM, bf16 dense
    planned = [c for c in plan["cells"] if "steps" in c]
    assert {c["task"] for c in planned} >= {"e2e", "webnlg"}
    for c in planned:
        assert c["steps"] > 0 and c["train_flops"] > 0
        assert c["seconds"] == pytest.approx((c["train_flops"] + c["decode_flops"]) * rate)
    ft = next(c for c in planned if c["task"] == "e2e" and c["method"] == "FT")
    assert ft["steps"] == 5 * -(-ft["examples"] // 10)  # 5 epochs of batches of 10
    hours = sum(c["seconds"] for c in planned) / 3600
    assert plan["totals"]["hours"] == pytest.approx(hours)
    for c in plan["cells"]:
        assert "steps" in c or "not found" in c["note"]


def test_mfu_from_perf_device_output(tmp_path, tiny_grid):
    """A `perf device --json` file's harness rows give each method its MFU (its best batch)."""
    rows = [
        {"method": "finetune", "batch": 8, "harness": {"tokens_per_s": 1.0, "mfu": 0.2}},
        {"method": "finetune", "batch": 64, "harness": {"tokens_per_s": 2.0, "mfu": 0.4}},
        {"method": "prefix", "batch": 64, "harness": {"tokens_per_s": 2.0, "mfu": 0.25}},
    ]
    measured = tmp_path / "device.json"
    measured.write_text(json.dumps({"gpu": "NVIDIA A100-SXM4-80GB", "training": rows}))
    plan = plan_grid(tiny_grid, Target(mfu_file=measured), results_dir=tmp_path / "r")
    assert plan.target == "NVIDIA A100-SXM4-80GB"
    for c in plan.cells:
        mfu = 0.4 if c.cell.method == "finetune" else 0.25
        flops = c.train_flops + c.decode_flops
        assert c.seconds == pytest.approx(flops / (312e12 * mfu))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--gpu", "Voodoo5"), "--gpu Voodoo5: no datasheet peak"),
        (("--gpu", "H100", "--mfu", "1.5"), "--mfu 1.5: a fraction"),
        (("--mfu-from", "README.md"), "--mfu-from README.md: not `perf device --json` output"),
        (("--set", "train.lrr=1"), "lrr"),
        (("--model", "random:gpt5"), "unknown architecture"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, args, message):
    code, _, err = bench_here(monkeypatch, capsys, "plan", "--results-dir", str(tmp_path), *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
