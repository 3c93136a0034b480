"""The GPU path's training, part two, checked on CPU: a cell that runs out of memory retries in
smaller forward passes (the same steps) and records it; `train.compile` compiles the base's
forward in place while training and only then; a checkpoint trained in another precision is
set aside rather than resumed."""

from __future__ import annotations

import json

import pytest
import torch

from bench.engine.adapted import AdaptedLM
from bench.engine.cell import CellFailed, failure_reason, run_cell, train_batch, training_notes
from bench.engine.training import Checkpointing, TrainResult, train
from bench.errors import UserError
from bench.results.store import Store, write_record
from bench.spec.grid import expand, load_grid
from bench.spec.settings import Cell, TrainConfig
from tests.engine.test_precision import setup

CPU = torch.device("cpu")

# One prefix cell, 12 steps of 8 pairs an epoch (32 examples, 96 pairs) for 2 epochs: its prefix
# starts from the global generator, so a model built again must start from the same random state.
GRID = """
name: oom
model: mini-tiny
tasks:
  - name: mini-e2e
    n_train: [32]
    eval_limit: 4
methods:
  - name: prefix
    settings: {length: 4, mlp_hidden: 32}
    train: {lr: 5.0e-3}
train: {epochs: 2, batch_size: 8}
decode: {num_beams: 1, max_new_tokens: 12}
"""


@pytest.fixture
def cell(tmp_path) -> Cell:
    path = tmp_path / "oom.yaml"
    path.write_text(GRID)
    return expand(load_grid(str(path))[0])[0]


def out_of_memory_above(monkeypatch, rows: int, after: int) -> list[int]:
    """Training forward passes of more than `rows` examples raise CUDA's out-of-memory error
    once `after` passes have run (a long step late in the epoch, say); returns the sizes of
    the passes that ran."""
    forward, ran = AdaptedLM.forward, []

    def limited(self, input_ids, *args, **kwargs):
        if torch.is_grad_enabled():
            if len(input_ids) > rows and len(ran) >= after:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            ran.append(len(input_ids))
        return forward(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(AdaptedLM, "forward", limited)
    return ran


def smaller(cell: Cell, batch_size: int, grad_accum: int) -> Cell:
    """The cell with another batch: a new cell (validated anew: a copy would keep the id)."""
    train = {**cell.train.model_dump(), "batch_size": batch_size, "grad_accum": grad_accum}
    return Cell.model_validate({**cell.model_dump(), "train": train})


def test_out_of_memory_retries_in_halved_passes_as_if_run_so_from_the_start(
    cell, monkeypatch, tmp_path
):
    """Three steps done at 8 examples a pass, then out of memory; 4 a pass fails too; 2 fits.
    The cell ends exactly as one run with batch 2 x 4 from the start: no weight of the failed
    attempts, nor their random draws, reaches the result. Its id and config are its own, and
    the store keeps what ran."""
    ran = out_of_memory_above(monkeypatch, rows=2, after=3)
    record = run_cell(cell, None)
    assert ran[:3] == [8, 8, 8] and set(ran[3:]) == {2}
    monkeypatch.undo()
    direct = run_cell(smaller(cell, 2, 4), None)
    assert record.cell == cell and record.cell.id != direct.cell.id
    assert record.provenance["train_batch"] == {"batch_size": 2, "grad_accum": 4, "oom_retries": 2}
    assert direct.provenance["train_batch"] == {"batch_size": 2, "grad_accum": 4, "oom_retries": 0}
    assert record.provenance["train_steps"] == direct.provenance["train_steps"] == 24
    assert record.provenance["resumed_at_step"] is None
    assert record.stored == direct.stored
    assert record.losses == direct.losses and record.predictions == direct.predictions
    assert record.notes == [
        "mini-e2e / prefix(length=4, mlp_hidden=32) n=32 sample 0 / seed 0: out of memory at "
        "train.batch_size 8: trained 2 examples a pass, 4 passes a step (2 retries; the same "
        "steps)"
    ]
    store = Store(tmp_path / "r" / "bench.sqlite")
    store.start_cell(cell.id, cell.model_dump(mode="json"))
    write_record(store, tmp_path / "r", record)
    stored = json.loads(store.run(cell.id)["provenance"])
    assert stored["train_batch"]["oom_retries"] == 2


def test_a_retry_resumes_the_checkpoint_the_failed_attempt_saved(cell, monkeypatch, tmp_path):
    """With a checkpoint, the retry goes on from the last step the failed attempt saved (the
    steps are the same): its first 3 steps are those of batch 8, the rest ran in passes of 2.
    A pass's loss is the mean over its own tokens (as with grad_accum), so those steps are
    near, not equal to, batch 8's."""
    out_of_memory_above(monkeypatch, rows=2, after=3)
    record = run_cell(cell, None, checkpoints=Checkpointing(tmp_path / "c", every_seconds=0))
    monkeypatch.undo()
    plain = run_cell(cell, None)
    assert record.provenance["resumed_at_step"] == 3
    assert record.provenance["train_batch"] == {"batch_size": 2, "grad_accum": 4, "oom_retries": 2}
    losses, whole = record.losses["train"], plain.losses["train"]
    assert [step for step, _ in losses] == list(range(1, 25))
    assert losses[:3] == whole[:3]
    assert all(a != b for (_, a), (_, b) in zip(losses[3:], whole[3:], strict=True))
    assert [a for _, a in losses] == pytest.approx([b for _, b in whole], rel=0.02)


def test_out_of_memory_one_example_a_pass_fails_the_cell_with_what_to_change(cell, monkeypatch):
    out_of_memory_above(monkeypatch, rows=0, after=0)
    with pytest.raises(CellFailed) as failed:
        run_cell(smaller(cell, 3, 1), None)
    assert failure_reason(failed.value) == (
        "out of memory training one example at a time (train.batch_size 3 halved down to 1: "
        "CUDA out of memory. Tried to allocate 2.00 GiB); lower train.max_source_tokens or "
        "train.max_target_tokens, or use a smaller model or a larger GPU"
    )
    assert isinstance(failed.value.__cause__, torch.OutOfMemoryError)


def test_odd_batches_keep_their_steps_in_passes_of_unequal_size(monkeypatch):
    """5 examples a step, lowered to passes of 3 (the halving of 5, rounded up): every step
    still takes 5 examples, in passes of 3 and 2."""
    config = TrainConfig(epochs=1, batch_size=5, lr=1e-3)
    model, tokenizer, pairs = setup("prefix", examples=15, length=4, mlp_hidden=32)  # 45 pairs
    whole = train(model, tokenizer, pairs, [], config, seed=0, device=CPU)
    model, *_ = setup("prefix", examples=15, length=4, mlp_hidden=32)
    passes = out_of_memory_above(monkeypatch, rows=5, after=0)  # never raises: records passes
    split = train(model, tokenizer, pairs, [], config, seed=0, device=CPU, micro_batch=3)
    assert (whole.batch_size, whole.grad_accum, split.batch_size, split.grad_accum) == (5, 1, 3, 2)
    assert passes == [3, 2] * 9
    assert [s for s, _ in split.losses] == [s for s, _ in whole.losses] == list(range(1, 10))
    assert [x for _, x in split.losses] == pytest.approx([x for _, x in whole.losses], rel=0.02)


def fake_compile(monkeypatch) -> list[dict]:
    """torch.compile that records its call and compiles nothing (the function runs eager)."""
    calls = []

    def compile_(function, **options):
        calls.append({"function": function.__name__, **options})
        return function

    monkeypatch.setattr(torch, "compile", compile_)
    return calls


def test_compile_wraps_the_base_in_place_for_training_only(monkeypatch, tmp_path):
    """The base's forward is compiled (dynamic shapes) while training and eager after it;
    parameter, checkpoint and stored names are the eager model's."""
    config = TrainConfig(epochs=1, max_steps=3, batch_size=4, lr=1e-3)
    model, tokenizer, pairs = setup(examples=12)
    eager = train(model, tokenizer, pairs, [], config, seed=0, device=CPU)
    calls = fake_compile(monkeypatch)
    compiled, _, _ = setup(examples=12)
    names = list(compiled.state_dict())
    loss, seen = compiled.training_loss, []

    def watched(batch):
        seen.append(compiled.base._compiled_call_impl is not None)
        return loss(batch)

    monkeypatch.setattr(compiled, "training_loss", watched)
    saved = Checkpointing(tmp_path, every_seconds=0)
    on = config.model_copy(update={"compile": True})
    result = train(compiled, tokenizer, pairs, [], on, seed=0, device=CPU, checkpoint=saved)
    assert calls == [{"function": "_call_impl", "dynamic": True}]
    assert seen == [True, True, True] and compiled.base._compiled_call_impl is None
    assert result.losses == eager.losses
    assert list(compiled.state_dict()) == names == list(model.state_dict())
    assert list(compiled.stored_state()) == list(model.stored_state())
    assert set(saved.load()["weights"]) == {
        n for n, p in model.named_parameters() if p.requires_grad
    }


def test_a_compile_that_fails_is_one_line_naming_the_fix(monkeypatch):
    from torch._dynamo.exc import BackendCompilerFailed
    from torch._inductor.exc import InvalidCxxCompiler

    def failing(function, **options):
        def call(*args, **kwargs):
            raise BackendCompilerFailed(failing, InvalidCxxCompiler(), None)

        return call

    monkeypatch.setattr(torch, "compile", failing)
    model, tokenizer, pairs = setup(examples=4)
    config = TrainConfig(epochs=1, batch_size=4, compile=True)
    with pytest.raises(UserError) as error:
        train(model, tokenizer, pairs, [], config, seed=0, device=CPU)
    assert str(error.value).startswith("train.compile: torch.compile failed (InvalidCxxCompiler: ")
    assert str(error.value).endswith("or set train.compile to false")
    assert "\n" not in str(error.value) and model.base._compiled_call_impl is None


@pytest.mark.slow
def test_compiled_training_matches_eager(monkeypatch):
    """A real inductor compile (about a minute on 2 cores): the losses of 4 steps within 1e-5
    of eager's (measured: 4.8e-7). Inductor draws dropout masks its own way, so the test has
    it draw them as eager does."""
    from torch._dynamo.utils import counters

    monkeypatch.setattr("torch._inductor.config.fallback_random", True)
    config = TrainConfig(epochs=1, max_steps=4, batch_size=4, lr=1e-3)
    model, tokenizer, pairs = setup(examples=16)
    eager = train(model, tokenizer, pairs, [], config, seed=0, device=CPU)
    model, *_ = setup(examples=16)
    names, graphs = list(model.state_dict()), counters["stats"]["unique_graphs"]
    on = config.model_copy(update={"compile": True})
    compiled = train(model, tokenizer, pairs, [], on, seed=0, device=CPU)
    assert counters["stats"]["unique_graphs"] > graphs  # inductor did compile
    assert [s for s, _ in compiled.losses] == [1, 2, 3, 4]
    assert [x for _, x in compiled.losses] == pytest.approx([x for _, x in eager.losses], abs=1e-5)
    assert model.base._compiled_call_impl is None and list(model.state_dict()) == names


def test_a_checkpoint_in_another_precision_is_set_aside_and_training_starts_over(tmp_path):
    """Saved in fp32, run on in bf16: not resumed (it would go on in other arithmetic), so
    the run equals a fresh bf16 run, and says what it set aside."""
    config = TrainConfig(epochs=1, batch_size=2, lr=1e-3, precision="fp32")

    class Interrupted(Checkpointing):
        def save(self, state):
            super().save(state)
            if state["result"]["steps"] == 2:
                raise KeyboardInterrupt

    model, tokenizer, pairs = setup(examples=12)
    with pytest.raises(KeyboardInterrupt):
        train(model, tokenizer, pairs, [], config, 0, CPU, checkpoint=Interrupted(tmp_path, 0))
    bf16 = config.model_copy(update={"precision": "bf16"})
    model, *_ = setup(examples=12)
    saved = Checkpointing(tmp_path, every_seconds=0)
    resumed = train(model, tokenizer, pairs, [], bf16, seed=0, device=CPU, checkpoint=saved)
    fresh_model, *_ = setup(examples=12)
    fresh = train(fresh_model, tokenizer, pairs, [], bf16, seed=0, device=CPU)
    assert resumed.resumed_at is None and resumed.set_aside == {
        "why": "at step 2 trained in fp32, this run in bf16",
        "moved_to": f"{tmp_path}.set-aside-1",  # kept, beside the folder
    }
    assert resumed.losses == fresh.losses and len(fresh.losses) == 18
    pairs_of_weights = zip(model.named_parameters(), fresh_model.parameters(), strict=True)
    for (name, trained), same in pairs_of_weights:
        assert torch.equal(trained, same), name
    assert saved.load()["result"]["precision"] == "bf16"  # saved afresh in the folder
    kept = torch.load(f"{tmp_path}.set-aside-1/training.pt", weights_only=False)
    assert kept["result"]["steps"] == 2  # the fp32 state, moved aside whole


def test_what_training_did_unasked_is_recorded_and_said(cell):
    result = TrainResult(6, 1.0, precision="fp32", batch_size=8, grad_accum=1)
    result.set_aside = {
        "why": "at step 40 trained in bf16, this run in fp32",
        "moved_to": "r/cells/f0.checkpoint.set-aside-1",
    }
    assert train_batch(result) == {"batch_size": 8, "grad_accum": 1, "oom_retries": 0}
    assert train_batch(TrainResult(0, 0.0)) is None  # an ensemble trains nothing
    assert training_notes(cell, result) == [
        "mini-e2e / prefix(length=4, mlp_hidden=32) n=32 sample 0 / seed 0: its checkpoint at "
        "step 40 trained in bf16, this run in fp32: set aside as "
        "r/cells/f0.checkpoint.set-aside-1, trained from the start"
    ]
