"""The training loop lowers dev loss for every method and stops on a diverging loss."""

import pytest
import torch

from bench.engine.encoding import encode_pair
from bench.engine.training import IGNORE, TrainingDiverged, evaluate_loss, train
from bench.spec.registry import TASKS
from bench.spec.settings import TrainConfig
from bench.spec.task import DEV, TRAIN, training_pairs
from tests.builders import build_on_mini

CPU = torch.device("cpu")


def setup(method: str, **settings):
    model, tokenizer = build_on_mini(method, seed=None, **settings)
    task = TASKS.get("mini-e2e")()
    pairs = training_pairs(task.load(TRAIN)[:60])
    dev = training_pairs(task.load(DEV)[:10])
    return model, tokenizer, pairs, dev


@pytest.mark.parametrize(
    ("method", "settings", "lr"),
    [("finetune", {}, 1e-3), ("prefix", {"length": 4, "mlp_hidden": 32}, 5e-3)],
)
def test_training_lowers_dev_loss(method, settings, lr):
    model, tokenizer, pairs, dev = setup(method, **settings)
    config = TrainConfig(epochs=2, lr=lr, batch_size=8, dev_examples=30)
    encoded = [encode_pair(tokenizer, s, t, config) for s, t in dev]
    before = evaluate_loss(model, encoded, 8, tokenizer.eos_token_id, CPU)
    result = train(model, tokenizer, pairs, dev, config, seed=0, device=CPU)
    assert result.steps == 2 * 23  # 180 pairs / 8 per step, two epochs
    assert [epoch for epoch, _ in result.dev_losses] == [1, 2]
    assert result.dev_losses[-1][1] < before


def test_the_loss_covers_the_target_only():
    _, tokenizer, _, _ = setup("finetune")
    _, ids, labels = encode_pair(tokenizer, "name : X", "X is a pub.", TrainConfig())
    source_len = len(tokenizer.encode(" name : X")) + 1
    assert labels[:source_len] == [IGNORE] * source_len
    assert labels[source_len:] == ids[source_len:] and ids[-1] == tokenizer.eos_token_id


def test_a_nan_loss_stops_training_with_a_reason():
    model, tokenizer, pairs, dev = setup("finetune")
    with torch.no_grad():
        model.base.transformer.wte.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="training loss is nan at step 0"):
        train(model, tokenizer, pairs, dev, TrainConfig(epochs=1), seed=0, device=CPU)


def test_the_dev_loss_is_scored_only_when_asked(monkeypatch):
    """dev_examples > 0: a dev loss per epoch; 0 (the default): dev pairs are neither encoded
    nor scored. Scoring draws no random numbers, so training is the same either way."""
    model, tokenizer, pairs, dev = setup("finetune")  # mini-tiny has dropout: the RNG matters
    asked = train(
        model,
        tokenizer,
        pairs[:24],  # 3 steps of 8 per epoch
        dev,
        TrainConfig(epochs=2, lr=1e-3, batch_size=8, dev_examples=5),
        seed=0,
        device=CPU,
    )
    assert [epoch for epoch, _ in asked.dev_losses] == [1, 2]
    assert all(0 < loss < 20 for _, loss in asked.dev_losses)

    def never(*args, **kwargs):
        raise AssertionError("a dev loss was scored though none was asked for")

    monkeypatch.setattr("bench.engine.training.evaluate_loss", never)
    unasked, *_ = setup("finetune")
    unencodable = [(None, None)]  # encoding it would raise: proof that it is never encoded
    config = TrainConfig(epochs=2, lr=1e-3, batch_size=8)
    skipped = train(unasked, tokenizer, pairs[:24], unencodable, config, seed=0, device=CPU)
    assert config.dev_examples == 0 and skipped.dev_losses == []
    assert skipped.losses == asked.losses and skipped.steps == 6
    for (name, trained), (_, same) in zip(
        model.named_parameters(), unasked.named_parameters(), strict=True
    ):
        assert torch.equal(trained, same), name
