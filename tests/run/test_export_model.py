"""`bench export --format model`: a finished cell's model loads where its users work (PEFT,
adapters, transformers) and computes what the harness computed; nothing else is written."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import adapters
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from bench.cli import main
from bench.engine.cell import load_stored_model
from bench.results.store import Store, cell_dir
from tests.e2e.test_bad_input import snapshot
from tests.runs import bench_here as bench

GRID = """
name: exportable
model: mini
seeds: [0]
tasks: [{name: mini-e2e, eval_limit: 2}]
methods:
  - {name: lora, train: {lr: 3.0e-3}}
  - {name: prefix, settings: {length: 5, mlp_hidden: 32}, train: {lr: 5.0e-3}}
  - {name: prompt, settings: {length: 5, mlp_hidden: 32}, train: {lr: 5.0e-3}}
  - {name: finetune, train: {lr: 1.0e-3}}
  - {name: adapter, settings: {config: pfeiffer, share: 0.01}}
  - {name: peft-ia3, train: {lr: 1.0e-2}}
  - name: peft-prefix-tuning
    settings: {config: {num_virtual_tokens: 4, prefix_projection: true, encoder_hidden_size: 32}}
  - name: ensemble
    settings:
      prefix: {settings: {length: 4, mlp_hidden: 16}, train: {lr: 5.0e-3}}
      finetune: {train: {lr: 1.0e-3}}  # the grid's own finetune cell
  - {name: infix, settings: {length: 3, mlp_hidden: 32}}
train: {epochs: 1, max_steps: 3, batch_size: 8}
decode: {num_beams: 2, max_new_tokens: 6}
"""
DEPENDENCY = {"length": 4, "mlp_hidden": 16}  # the ensemble's prefix
TEXTS = [
    "name : Vela | area : riverside",
    "name : The Golden Crown | eatType : pub | food : Italian | area : city centre",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exportable")
    (folder / "g.yaml").write_text(GRID)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(folder)
        monkeypatch.setattr(sys, "argv", ["bench", "run", "--grid", "g.yaml", "--results-dir", "r"])
        main()
    return folder / "r"


def cell_of(results: Path, method: str) -> str:
    """The grid's own cell of `method` (not one a hybrid depends on)."""
    store = Store.open_existing(results)
    try:
        runs = [r for r in store.runs() if r["method"] == method]
    finally:
        store.close()

    def settings(cell: str) -> dict:
        return json.loads((cell_dir(results, cell) / "cell.json").read_text())["settings"]

    (cell,) = [r["cell"] for r in runs if not DEPENDENCY.items() <= settings(r["cell"]).items()]
    return cell


def left_padded(tokenizer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A left-padded batch, its mask and the positions that count real tokens only."""
    rows = [tokenizer.encode(text) for text in TEXTS]
    width = max(map(len, rows))
    pad = tokenizer.eos_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def exported(results, tmp_path, monkeypatch, capsys, method) -> tuple[Path, str]:
    cell = cell_of(results, method)
    out = tmp_path / method
    before = snapshot(results)
    code, _, err = bench(
        monkeypatch, capsys, "export", "--results-dir", str(results),
        "--format", "model", "--cell", cell, "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert snapshot(results) == before  # export only reads the store
    return out, cell


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "prefix", "peft-ia3", "peft-prefix-tuning"])
def test_a_peft_folder_loads_with_peft_and_gives_the_harness_s_logits(
    results, tmp_path, monkeypatch, capsys, method
):
    out, cell = exported(results, tmp_path, monkeypatch, capsys, method)
    described = json.loads((out / "bench_export.json").read_text())
    assert described["format"] == "peft" and described["base_model"]["saved_in"] == "base"
    assert described["base_model"]["spec"] == "mini" and described["cell"] == cell
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    ours, tokenizer = load_stored_model(cell_dir(results, cell))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(out / "base"), out)
        assert isinstance(readme_model(out, monkeypatch), PeftModel)  # its README's code
    ids, mask, positions = left_padded(tokenizer)
    real = mask.bool()
    with torch.no_grad():
        logits, _ = ours(ids, mask)
        peft_logits = theirs.eval()(input_ids=ids, attention_mask=mask, position_ids=positions)
    torch.testing.assert_close(logits[real], peft_logits.logits[real], atol=1e-5, rtol=0)


def readme_model(folder: Path, monkeypatch):
    """What the loading code in the folder's README builds, run in the folder."""
    code = (folder / "README.md").read_text().split("```python\n")[1].split("```")[0]
    namespace: dict = {}
    with monkeypatch.context() as inside:
        inside.chdir(folder)
        exec(compile(code, "README.md", "exec"), namespace)
    return namespace["model"]


@pytest.mark.slow
def test_prompt_tuning_loads_with_peft(results, tmp_path, monkeypatch, capsys):
    """PEFT's prompt tuning numbers positions over padding, so the rows are unpadded."""
    out, cell = exported(results, tmp_path, monkeypatch, capsys, "prompt")
    ours, tokenizer = load_stored_model(cell_dir(results, cell))
    base = AutoModelForCausalLM.from_pretrained(out / "base")
    theirs = PeftModel.from_pretrained(base, out).eval()
    for text in TEXTS:
        ids = torch.tensor([tokenizer.encode(text)])
        mask = torch.ones_like(ids)
        with torch.no_grad():
            logits, _ = ours(ids, mask)
            peft_logits = theirs(input_ids=ids, attention_mask=mask).logits[:, -ids.shape[1] :]
        torch.testing.assert_close(logits, peft_logits, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_finetuned_adapter_ensemble_and_infix_folders_load(results, tmp_path, monkeypatch, capsys):
    out, cell = exported(results, tmp_path, monkeypatch, capsys, "finetune")
    assert json.loads((out / "bench_export.json").read_text())["base_model"] is None
    ours, tokenizer = load_stored_model(cell_dir(results, cell))
    ids, mask, positions = left_padded(tokenizer)
    real = mask.bool()
    theirs = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(readme_model(out, monkeypatch)) is type(theirs)
    with torch.no_grad():
        expected = ours(ids, mask)[0][real]
        got = theirs(input_ids=ids, attention_mask=mask, position_ids=positions).logits[real]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    out, cell = exported(results, tmp_path, monkeypatch, capsys, "adapter")
    ours = load_stored_model(cell_dir(results, cell))[0]
    base = AutoModelForCausalLM.from_pretrained(out / "base")
    adapters.init(base)
    base.set_active_adapters(base.load_adapter(str(out)))
    assert readme_model(out, monkeypatch).active_adapters is not None
    with torch.no_grad():
        expected = ours(ids, mask)[0][real]
        got = base.eval()(input_ids=ids, attention_mask=mask, position_ids=positions).logits[real]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    out, cell = exported(results, tmp_path, monkeypatch, capsys, "ensemble")
    described = json.loads((out / "bench_export.json").read_text())
    assert described["format"] == "parts" and described["parts"] == ["finetune", "prefix"]
    prefix_part = json.loads((out / "parts/prefix/bench_export.json").read_text())
    assert prefix_part["format"] == "peft"
    depends = json.loads((cell_dir(results, cell) / "cell.json").read_text())["depends"]
    assert prefix_part["cell"] == depends["prefix"] and prefix_part["method"] == "prefix"
    assert "parts/prefix" in (out / "README.md").read_text()

    out, cell = exported(results, tmp_path, monkeypatch, capsys, "infix")
    assert json.loads((out / "bench_export.json").read_text())["format"] == "bench"
    assert type(readme_model(out, monkeypatch)).__name__ == "InfixLM"
    again = load_stored_model(out)[0]
    ours = load_stored_model(cell_dir(results, cell))[0]
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask)[0], ours(ids, mask)[0])


@pytest.mark.slow
def test_bad_export_requests_are_one_line_and_write_nothing(results, tmp_path, monkeypatch, capsys):
    cell = cell_of(results, "lora")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("mine")
    (tmp_path / "link").symlink_to(taken)
    cases = [
        (["--cell", cell, "--out", str(taken)], "exists and is not an empty folder"),
        (["--cell", cell, "--out", str(tmp_path / "link")], "is a symbolic link"),
        (["--cell", cell], "pass --out DIR"),
        (["--cell", "0" * 16, "--out", str(tmp_path / "new")], "no cell '0000000000000000'"),
        (["--out", str(tmp_path / "new")], "--cell ID goes with --format model"),
    ]
    before = snapshot(tmp_path)
    for extra, message in cases:
        fmt = ["--format", "model"] if "--cell" in extra or message.startswith("--cell") else []
        code, out, err = bench(
            monkeypatch, capsys, "export", "--results-dir", str(results), *fmt, *extra
        )
        assert code == 2 and not out and err.count("\n") == 1 and message in err, err
    assert snapshot(tmp_path) == before
