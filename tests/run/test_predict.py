"""`bench predict`: a stored cell's method decodes new inputs exactly as the cell decoded its
test set, a bare model as `transformers`' `generate` does, and nothing is written."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.engine.loading import load_model
from bench.engine.record import STORED
from bench.results.store import Store, cell_dir
from tests.e2e.test_bad_input import snapshot
from tests.runs import bench_here as bench

PROMPTS = ["name : The Golden Crown | food : Italian", "Varhaton : country : Avalia"]
# Trained enough (about 10 s) that outputs are text; min_new_tokens keeps every output non-empty.
GRID = """
name: predictable
model: mini-tiny
seeds: [0]
tasks:
  - {name: mini-e2e, n_train: [64], eval_limit: 6}
methods:
  - name: finetune
    train: {lr: 2.0e-3}
  - name: prefix
    settings: {length: 4, mlp_hidden: 32}
    train: {lr: 1.0e-2}
train: {epochs: 3, batch_size: 8}
decode: {num_beams: 3, max_new_tokens: 20, min_new_tokens: 4}
"""


def predict(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return bench(monkeypatch, capsys, "predict", *args)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("predictable")
    (folder / "g.yaml").write_text(GRID)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(folder)
        monkeypatch.setattr(sys, "argv", ["bench", "run", "--grid", "g.yaml", "--results-dir", "r"])
        main()  # exits only when something failed
    return folder / "r"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["prefix", "finetune"])
def test_a_stored_cell_decodes_its_test_sources_as_the_cell_did(
    results, tmp_path, monkeypatch, capsys, method
):
    store = Store.open_existing(results)
    (run,) = [r for r in store.runs() if r["method"] == method]
    store.close()
    predictions = cell_dir(results, run["cell"]) / "predictions" / "test.jsonl"
    stored = [json.loads(line) for line in predictions.read_text().splitlines()]
    expected = {row["source"]: row["prediction"] for row in stored}
    sources = list(expected)[:6]
    inputs = tmp_path / "in.txt"
    inputs.write_text("".join(f"{s}\n" for s in sources))
    before = snapshot(results)
    code, out, err = predict(monkeypatch, capsys, "--cell", run["cell"], "--inputs", str(inputs),
                             "--results-dir", str(results), "--json")  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["input"] for r in rows] == sources
    assert [r["output"] for r in rows] == [expected[s] for s in sources]
    assert all(isinstance(r["score"], float) and r["tokens"] for r in rows)
    assert snapshot(results) == before
    code, plain, err = predict(monkeypatch, capsys, "--cell", run["cell"], "--inputs",
                               str(inputs), "--results-dir", str(results))  # fmt: skip
    assert code == 0 and plain.splitlines() == [expected[s] for s in sources], err


@pytest.mark.parametrize("lp", [0.0, 1.0, 2.0])
def test_a_bare_model_under_rule_hf_decodes_as_generate(tmp_path, monkeypatch, capsys, lp):
    inputs = tmp_path / "in.txt"
    inputs.write_text("".join(f"{p}\n" for p in PROMPTS))
    code, out, err = predict(
        monkeypatch, capsys, "--model", "mini", "--inputs", str(inputs), "--json",
        "--set", "decode.rule=hf", "--set", "decode.num_beams=3",
        "--set", f"decode.length_penalty={lp}", "--set", "decode.max_new_tokens=12",
    )  # fmt: skip
    assert code == 0, err
    ours = [json.loads(line)["tokens"] for line in out.splitlines()]
    loaded = load_model("mini", seed=0)
    tokenizer = loaded.tokenizer
    for prompt, tokens in zip(PROMPTS, ours, strict=True):
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        theirs = loaded.model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=3,
            length_penalty=lp, max_new_tokens=12, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
        )[0, ids.shape[1]:].tolist()  # fmt: skip
        if tokenizer.eos_token_id in theirs:
            theirs = theirs[: theirs.index(tokenizer.eos_token_id)]
        assert tokens == theirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_a_cell_whose_weights_changed_is_refused(results, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "r"
    shutil.copytree(results, copy)
    store = Store.open_existing(copy)
    cell = store.runs()[0]["cell"]
    store.close()
    weights = cell_dir(copy, cell) / STORED
    weights.write_bytes(weights.read_bytes()[:-1] + b"x")
    inputs = tmp_path / "in.txt"
    inputs.write_text(PROMPTS[0] + "\n")
    code, out, err = predict(monkeypatch, capsys, "--cell", cell, "--inputs", str(inputs),
                             "--results-dir", str(copy))  # fmt: skip
    assert code == 2 and not out
    assert f"cell {cell}'s files are not the ones stored with it" in err, err
    assert len(err.strip().splitlines()) == 1
