"""The GPU path's training, checked on CPU: precision as a setting (autocast, the fp16 scaler),
fused AdamW only on a GPU, and losses read on the host only at logging intervals, all with fp32
results bit for bit those of the loop before (a copy of it here is the oracle)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from transformers import get_linear_schedule_with_warmup

from bench.engine.encoding import encode_pair, encode_pairs
from bench.engine.loading import load_model
from bench.engine.precision import autocast, resolve_precision
from bench.engine.training import (
    LOG_EVERY,
    TrainingDiverged,
    collate,
    length_grouped_steps,
    make_optimization,
    train,
)
from bench.errors import UserError
from bench.spec.registry import TASKS
from bench.spec.settings import TrainConfig
from bench.spec.task import TRAIN, training_pairs
from tests.builders import build_on_mini

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only named: nothing here runs on it


def setup(method: str = "finetune", examples: int = 12, **settings):
    model, tokenizer = build_on_mini(method, seed=0, **settings)
    return model, tokenizer, training_pairs(TASKS.get("mini-e2e")().load(TRAIN)[:examples])


def old_loop(model, tokenizer, pairs, config: TrainConfig, seed: int) -> list[tuple[int, float]]:
    """`bench.engine.training.train` as it was before issue 16 (no dev loss, no checkpoints): fp32,
    default AdamW, each micro-batch's loss read on the host and checked as it came."""
    torch.manual_seed(seed)
    order_rng = random.Random(seed)
    examples = encode_pairs(tokenizer, pairs, config, None)
    per_step = config.batch_size * config.grad_accum
    total = min(config.max_steps or math.inf, config.epochs * math.ceil(len(examples) / per_step))
    parameters = model.trainable_parameters()
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, total)
    losses: list[tuple[int, float]] = []
    model.train()
    for _ in range(config.epochs):
        for chunk in length_grouped_steps(examples, per_step, order_rng):
            step_loss = 0.0
            for micro in range(0, len(chunk), config.batch_size):
                batch = collate(chunk[micro : micro + config.batch_size], tokenizer.eos_token_id)
                loss = model.training_loss(batch)
                assert torch.isfinite(loss)
                share = len(batch.input_ids) / len(chunk)
                (loss * share).backward()
                step_loss += loss.item() * share
            torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append((len(losses) + 1, step_loss))
            if len(losses) >= total:
                return losses
    return losses


@pytest.mark.parametrize(
    ("method", "settings"), [("finetune", {}), ("prefix", {"length": 4, "mlp_hidden": 32})]
)
def test_fp32_training_is_bit_for_bit_the_loop_before(method, settings):
    """Over more than one logging interval, two epochs and gradient accumulation: the same
    stored losses and the same weights, exactly."""
    config = TrainConfig(epochs=2, lr=1e-3, batch_size=2, grad_accum=2, weight_decay=0.1)
    model, tokenizer, pairs = setup(method, **settings)
    result = train(model, tokenizer, pairs, [], config, seed=3, device=CPU)
    before, *_ = setup(method, **settings)
    expected = old_loop(before, tokenizer, pairs, config, seed=3)
    assert result.precision == "fp32" and len(expected) > LOG_EVERY
    assert result.losses == expected
    for (name, trained), (_, same) in zip(
        model.named_parameters(), before.named_parameters(), strict=True
    ):
        assert torch.equal(trained, same), name


def test_bf16_autocast_keeps_the_top_tokens_of_fp32():
    """On a fixed batch of the mini LM, bf16's top token is fp32's at every position but near
    ties (fp32's two best within 0.05 logits; bf16 keeps 8 bits of mantissa)."""
    loaded = load_model("mini-tiny", 0)
    model = loaded.model.eval()
    pairs = training_pairs(TASKS.get("mini-e2e")().load(TRAIN)[:16])[:16]
    batch = collate([encode_pair(loaded.tokenizer, s, t, TrainConfig()) for s, t in pairs], 0)
    with torch.no_grad():
        full = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        with autocast("bf16", CPU):
            half = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert half.dtype == torch.bfloat16  # autocast was on
    real = batch.attention_mask.bool()
    same = (full.argmax(-1) == half.argmax(-1))[real]
    best, second = full.topk(2, dim=-1).values[real].unbind(-1)
    assert (best - second)[~same].max() < 0.05
    assert same.float().mean() > 0.95 and (full - half.float()).abs().max() < 0.1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_lower_precisions_train_under_autocast(precision):
    """bf16 and fp16 (with its loss scaler) train on CPU too: finite losses near fp32's but
    not equal to them, so the forward pass did run in the lower precision."""
    config = TrainConfig(epochs=1, max_steps=3, lr=1e-3, precision=precision)
    model, tokenizer, pairs = setup()
    lower = train(model, tokenizer, pairs, [], config, seed=0, device=CPU)
    model, *_ = setup()
    full = train(
        model, tokenizer, pairs, [], config.model_copy(update={"precision": "fp32"}), 0, CPU
    )
    assert lower.precision == precision and len(lower.losses) == 3
    for (_, low), (_, high) in zip(lower.losses, full.losses, strict=True):
        assert low != high and abs(low - high) < 0.01


@pytest.mark.parametrize(("step", "epoch_steps", "calls"), [(5, 40, LOG_EVERY), (3, 6, 6)])
def test_a_nan_is_named_by_its_step_when_the_losses_are_read(monkeypatch, step, epoch_steps, calls):
    """The loss is read every LOG_EVERY steps and at the end of an epoch: training runs on to
    that point, then stops naming the step whose loss first went NaN."""
    model, tokenizer, pairs = setup(examples=epoch_steps)  # 3 pairs an example
    config = TrainConfig(epochs=1, batch_size=3, lr=1e-3)
    real_loss, done = model.training_loss, 0  # one micro-batch, so one call, a step

    def poisoned(batch):
        nonlocal done
        loss = real_loss(batch)
        done += 1
        return loss * float("nan") if done - 1 == step else loss

    monkeypatch.setattr(model, "training_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=f"training loss is nan at step {step}$"):
        train(model, tokenizer, pairs, [], config, seed=0, device=CPU)
    assert done == calls


def test_auto_is_bf16_only_on_a_gpu_that_has_it(monkeypatch):
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16" and resolve_precision("fp16", CPU) == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision("auto", CUDA) == "bf16"
    emulated = lambda including_emulation=True: including_emulation  # noqa: E731 (a T4)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulated)
    assert resolve_precision("auto", CUDA) == "fp32"  # emulated bf16 is slower than fp32
    assert resolve_precision("bf16", CUDA) == "bf16"  # asked for: it runs, emulated
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    assert resolve_precision("auto", CUDA) == "fp32"
    with pytest.raises(UserError, match="Tesla V100 has no bfloat16 support; use fp16 or auto"):
        resolve_precision("bf16", CUDA)


def test_adamw_is_fused_on_a_gpu_only():
    parameters = [torch.nn.Parameter(torch.zeros(3))]
    config = TrainConfig()
    assert make_optimization(parameters, config, CUDA, "fp32", 10).optimizer.defaults["fused"]
    assert not make_optimization(parameters, config, CPU, "fp32", 10).optimizer.defaults["fused"]
