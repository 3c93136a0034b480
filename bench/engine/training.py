"""The training loop: AdamW, linear schedule with warmup, gradient accumulation, seeded.

Readable top to bottom on purpose. Examples are encoded by `bench.engine.encoding` (the loss is on
the target tokens only); the model is any `AdaptedLM`, whose method decides what is trained.
"""

from __future__ import annotations

import errno
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from bench.engine.adapted import IGNORE, AdaptedLM, Batch, target_loss
from bench.engine.encoding import Encoded, encode_pairs
from bench.engine.precision import autocast, grad_scaler, resolve_precision
from bench.errors import UserError
from bench.progress import Progress, tracker
from bench.spec.settings import TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the cell fails with this reason and the grid goes on."""


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean train loss)
    dev_losses: list[tuple[int, float]] = field(default_factory=list)  # (epoch, dev loss)
    resumed_at: int | None = None  # the step a checkpoint resumed from, if one did
    precision: str = "fp32"  # what training (and decoding) ran in (`bench.engine.precision`)
    batch_size: int = 0  # examples per forward pass: the config's unless lowered (`train`)
    grad_accum: int = 0  # forward passes per optimizer step
    oom_retries: int = 0  # set by `bench.engine.cell`: runs that ran out of memory before this one
    # a checkpoint found but not resumed, moved out of the way: {"why", "moved_to"}
    set_aside: dict[str, str] | None = None


def _right_pad(rows: Sequence[list[int]], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), fill)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def collate(encoded: Sequence[Encoded], pad_id: int) -> Batch:
    """Right-padded tensors; the source goes to the encoder only where there is one."""
    input_ids, attention = _right_pad([ids for _, ids, _ in encoded], pad_id)
    labels, _ = _right_pad([labs for _, _, labs in encoded], IGNORE)
    source = _right_pad([src for src, _, _ in encoded], pad_id) if encoded[0][0] else None
    return Batch(input_ids, attention, labels, source)


def length_grouped_steps(
    examples: list[Encoded], per_step: int, rng: random.Random
) -> list[list[Encoded]]:
    """Examples for each optimizer step, in random order but with similar lengths together.

    Shuffle, sort within windows of 50 steps, then shuffle the steps: padding shrinks (about a
    quarter of the tokens on the mini tasks) while every epoch still sees every example once.
    """
    order = examples[:]
    rng.shuffle(order)
    window = 50 * per_step
    steps = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lambda ex: len(ex[0]) + len(ex[1]))
        steps += [part[i : i + per_step] for i in range(0, len(part), per_step)]
    rng.shuffle(steps)
    return steps


@torch.no_grad()
def evaluate_loss(
    model: AdaptedLM,
    encoded: list[Encoded],
    batch_size: int,
    pad_id: int,
    device: torch.device,
    precision: str = "fp32",
) -> float:
    """Mean target cross-entropy per token (never a method's extra training terms), computed
    in the resolved `precision` training runs in."""
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start : start + batch_size], pad_id).to(device)
        n = int((batch.labels[:, 1:] != IGNORE).sum())
        with autocast(precision, device):
            logits, _ = model(batch.input_ids, batch.attention_mask, source=batch.source)
            loss = target_loss(logits, batch.labels)
        total += loss.item() * n
        tokens += n
    model.train()
    return total / max(tokens, 1)


class NotResumable(Exception):
    """What is in a cell's checkpoint folder is not a whole state of this cell: why, in words."""


# The pieces of a saved state: `training_state`'s, and the identity `Checkpointing.save` stamps.
PIECES = (
    "weights",
    "optimizer",
    "scheduler",
    "scaler",
    "result",
    "epoch",
    "position",
    "epoch_order",
    "rng",
    "identity",
)


@dataclass
class Checkpointing:
    """Where a cell saves its resumable training state, and how often: in the cell's own
    checkpoint folder, every `every_seconds` (0: after every optimizer step).

    Each state is stamped with `identity` (what ties it to its cell: `bench.engine.cell` sets the
    cell's id, config digest, model and code version) and its step, so that a state saved by
    anything else is never resumed as this cell's. Symlinks are never followed, for reading or
    writing: the folder may be copied into, or linked out of, the results directory by hand.
    """

    folder: Path
    every_seconds: float = 600.0
    saved_at: float = field(default_factory=time.time)
    identity: dict[str, Any] = field(default_factory=dict)
    moved: dict[str, str] | None = field(default=None, init=False)  # what `set_aside` moved

    @property
    def path(self) -> Path:
        return self.folder / "training.pt"

    def due(self) -> bool:
        return time.time() - self.saved_at >= self.every_seconds

    def save(self, state: dict[str, Any]) -> None:
        """Atomically: a kill during the save leaves the previous checkpoint whole."""
        if self.folder.is_symlink():  # linked while the cell ran: never written through
            raise RuntimeError(f"the checkpoint folder {self.folder} is a symlink")
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.unlink(missing_ok=True)  # a link there goes, its target stays
        stamp = {**self.identity, "step": state["result"]["steps"]}
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            torch.save({**state, "identity": stamp}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, self.path)  # replaces a link at `path` itself, never its target
        self.saved_at = time.time()

    def load(self) -> dict[str, Any] | None:
        """The saved state; None when none was saved. `NotResumable` when the folder or its
        file is a symlink, or the file is unreadable, partial or stamped for another cell."""
        if self.folder.is_symlink():
            raise NotResumable("is a symlink (not followed)")
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None  # no folder, or killed before its first save
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise NotResumable(f"has a symlink for {self.path.name} (not followed)") from error
            raise NotResumable(f"cannot be read ({error.strerror})") from error
        with os.fdopen(fd, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise NotResumable(f"is empty ({self.path.name}: 0 bytes)")
            try:
                state = torch.load(f, weights_only=False)
            except Exception as error:  # whatever a damaged file makes the unpickler raise
                reason = f"{type(error).__name__}: {error}".splitlines()[0].split(". ")[0]
                raise NotResumable(f"is unreadable ({reason})") from error
        self.check_identity(state)
        return state

    def check_identity(self, state: Any) -> None:
        """`NotResumable` unless `state` has every piece and is stamped with this `identity`
        and the step it holds."""
        if not isinstance(state, dict):
            raise NotResumable(f"is not a training state (a {type(state).__name__})")
        if missing := [piece for piece in PIECES if piece not in state]:
            raise NotResumable(f"is partial (no {', '.join(missing)})")
        if not all(isinstance(state[piece], dict) for piece in ("identity", "result")):
            raise NotResumable("is partial (a malformed identity or result)")
        stamp = dict(state["identity"])
        step = stamp.pop("step", None)
        for key in sorted(set(stamp) | set(self.identity)):
            if stamp.get(key) != self.identity.get(key):
                raise NotResumable(
                    f"was saved for another {key} ({stamp.get(key)!r}; this run's: "
                    f"{self.identity.get(key)!r})"
                )
        if step is None or step != state["result"].get("steps"):
            raise NotResumable(f"is partial (stamped step {step!r}, not the step it holds)")

    def set_aside(self, why: str) -> None:
        """Move the folder (a link itself, never its target) to the next free sibling
        `<name>.set-aside-N`: kept for a look, out of this run's way; `moved` says where."""
        siblings = (self.folder.with_name(f"{self.folder.name}.set-aside-{n}") for n in count(1))
        target = next(sibling for sibling in siblings if not os.path.lexists(sibling))
        os.rename(self.folder, target)
        self.moved = {"why": why, "moved_to": str(target)}


LOG_EVERY = 16  # optimizer steps between readings of the loss on the host


@dataclass
class StepLosses:
    """Each optimizer step's micro-batch losses, left on the device until `flush`.

    Reading a loss on the host (`.item()`, or branching on `torch.isfinite`) waits for the GPU
    to finish everything queued, so the host stops running ahead: doing it every micro-batch
    leaves the GPU idle between steps. The losses are read in one transfer every `LOG_EVERY`
    steps, before a checkpoint and at the end of each epoch, and checked for NaN/inf there.
    """

    pending: list[tuple[int, list[tuple[torch.Tensor, float]]]] = field(default_factory=list)

    def add(self, step: int, micro: list[tuple[torch.Tensor, float]]) -> None:
        """Step `step` (the optimizer steps done before it)'s (loss, share) per micro-batch."""
        self.pending.append((step, micro))

    def flush(self, result: TrainResult) -> dict[str, float]:
        """Append the pending steps' losses to `result.losses` and return the last one as the
        progress bar's info ({} when none was pending). A step's loss is the share-weighted
        sum of its micro-batch losses, summed on the host in the same order and precision as
        before the losses stayed on the device, so stored losses are unchanged bit for bit."""
        if not self.pending:
            return {}
        values = iter(
            torch.stack([loss for _, micro in self.pending for loss, _ in micro]).tolist()
        )
        for step, micro in self.pending:
            step_loss = 0.0
            for _, share in micro:
                step_loss += next(values) * share
            if not math.isfinite(step_loss):
                raise TrainingDiverged(f"training loss is {step_loss} at step {step}")
            result.losses.append((step + 1, step_loss))
        self.pending.clear()
        return {"loss": step_loss}


class Optimization(NamedTuple):
    """What updates the weights, all saved with a checkpoint: AdamW, its learning-rate schedule
    and the fp16 loss scaler (in other precisions a disabled one that passes straight through)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler


def make_optimization(
    parameters: list[torch.nn.Parameter],
    config: TrainConfig,
    device: torch.device,
    precision: str,
    total: float,
) -> Optimization:
    """AdamW, a schedule over `total` steps and the scaler. On a GPU AdamW is fused (one
    kernel for all parameters); on CPU it is the default per-tensor loop, so CPU results stay
    what they were."""
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(
        parameters, lr=config.lr, weight_decay=config.weight_decay, **fused
    )
    if config.schedule == "linear":
        scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, total)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / max(1, config.warmup_steps))
        )
    return Optimization(optimizer, scheduler, grad_scaler(precision, device))


def train(
    model: AdaptedLM,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[tuple[str, str]],
    dev_pairs: list[tuple[str, str]],
    config: TrainConfig,
    seed: int,
    device: torch.device,
    *,
    progress: Progress | None = None,
    checkpoint: Checkpointing | None = None,
    micro_batch: int | None = None,
) -> TrainResult:
    """Train `model` in place. With `checkpoint`, the state is saved as it goes and a saved
    state is resumed: the result is then exactly that of an uninterrupted run. Each optimizer
    step takes `batch_size x grad_accum` examples, in forward passes of `micro_batch` examples
    (default `config.batch_size`): `bench.engine.cell` lowers it after running out of memory, and
    the steps, their examples and order stay those of the config."""
    torch.manual_seed(seed)
    order_rng = random.Random(seed)
    pad_id = tokenizer.eos_token_id
    start = model.decoder_start_token_id if model.is_encoder_decoder else None
    examples = encode_pairs(tokenizer, pairs, config, start)
    dev = encode_pairs(tokenizer, dev_pairs[: config.dev_examples], config, start)  # 0: none

    per_step = config.batch_size * config.grad_accum
    steps_per_epoch = math.ceil(len(examples) / per_step)
    total_steps = min(config.max_steps or math.inf, config.epochs * steps_per_epoch)
    parameters = model.trainable_parameters()
    precision = resolve_precision(config.precision, device)
    optimization = make_optimization(parameters, config, device, precision, total_steps)
    optimizer, scheduler, scaler = optimization

    micro_batch = micro_batch or config.batch_size
    grad_accum = math.ceil(per_step / micro_batch)
    result = TrainResult(0, 0.0, precision=precision, batch_size=micro_batch, grad_accum=grad_accum)
    saved = resumable(checkpoint, result, model)
    first_epoch, skip = resume(saved, model, optimization, result, order_rng)
    started = time.time() - result.seconds
    losses, shown = StepLosses(), {}
    model.start_training(int(total_steps))
    model.train()
    with (
        compiled(model, config.compile),
        tracker(progress, "  training", int(total_steps)) as advance,
    ):
        advance(result.steps)
        for epoch in range(first_epoch, config.epochs):
            epoch_order = order_rng.getstate()  # a resumed epoch redraws the same order
            for position, chunk in enumerate(length_grouped_steps(examples, per_step, order_rng)):
                if epoch == first_epoch and position < skip:
                    continue
                micro = optimizer_step(model, chunk, micro_batch, pad_id, device, precision, scaler)
                scaler.unscale_(optimizer)  # fp16: clip the true gradients, not scaled ones
                torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
                scaler.step(optimizer)  # not fp16: optimizer.step()
                scaler.update()
                scheduler.step()
                model.after_step(result.steps)
                optimizer.zero_grad(set_to_none=True)
                losses.add(result.steps, micro)
                result.steps += 1
                if result.steps % LOG_EVERY == 0:
                    shown = losses.flush(result) or shown
                if checkpoint is not None and checkpoint.due():
                    losses.flush(result)  # a checkpoint holds every loss up to its step
                    result.seconds = time.time() - started
                    place = (epoch, position + 1, epoch_order)
                    checkpoint.save(training_state(model, optimization, result, place))
                advance(1, **shown)
                if result.steps >= total_steps:
                    break
            shown = losses.flush(result) or shown
            if dev:
                dev_loss = evaluate_loss(model, dev, micro_batch, pad_id, device, precision)
                result.dev_losses.append((epoch + 1, dev_loss))
            if result.steps >= total_steps:
                break
    result.seconds = time.time() - started
    return result


def optimizer_step(
    model: AdaptedLM,
    chunk: list[Encoded],
    micro_batch: int,
    pad_id: int,
    device: torch.device,
    precision: str,
    scaler: torch.amp.GradScaler,
) -> list[tuple[torch.Tensor, float]]:
    """Forward (in `precision`) and backward over one optimizer step's examples, in
    micro-batches weighted by their size; returns each micro-batch's loss, still on the device
    (`StepLosses` reads them), and its share of the step."""
    losses = []
    for micro in range(0, len(chunk), micro_batch):
        batch = collate(chunk[micro : micro + micro_batch], pad_id).to(device)
        with autocast(precision, device):
            loss = model.training_loss(batch)
        share = len(batch.input_ids) / len(chunk)
        scaler.scale(loss * share).backward()
        losses.append((loss.detach().float(), share))
    return losses


def training_state(
    model: AdaptedLM,
    optimization: Optimization,
    result: TrainResult,
    place: tuple[int, int, Any],
) -> dict[str, Any]:
    """Everything a resumed run needs to continue exactly: the trained weights, the optimizer,
    schedule and loss scaler, the losses so far, `place` (the epoch, the optimizer steps done
    in it, and the data-order generator's state at its start), and every random state."""
    epoch, position, epoch_order = place
    return {
        "weights": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimization.optimizer.state_dict(),
        "scheduler": optimization.scheduler.state_dict(),
        "scaler": optimization.scaler.state_dict(),  # {} unless fp16
        "result": asdict(result),
        "epoch": epoch,
        "position": position,
        "epoch_order": epoch_order,
        "rng": random_states(),
    }


def random_states() -> dict[str, Any]:
    """Every random generator's state (torch's, CUDA's, Python's, numpy's), to set back later."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def set_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])


def resumable(
    checkpoint: Checkpointing | None, result: TrainResult, model: AdaptedLM
) -> dict[str, Any] | None:
    """The saved state to resume, if there is one that is this cell's, whole, fits `model`
    and trained in `result.precision`.

    Anything else found is set aside (moved, never deleted) and training starts over:
    another cell's state, a damaged one, a symlink, or one trained in another precision
    (`auto` resolves to bf16 on one machine and fp32 on another, and it would go on in other
    arithmetic, neither exact nor refused). `result.set_aside` says why and where it went,
    also for a set-aside by an earlier attempt of this run (one that ran out of memory).
    """
    state = None
    if checkpoint is not None:
        try:
            state = checkpoint.load()
            if state is not None:
                check_fits(state, result.precision, model)
        except NotResumable as error:
            checkpoint.set_aside(str(error))
            state = None
        result.set_aside = checkpoint.moved
    return state


def check_fits(state: dict[str, Any], precision: str, model: AdaptedLM) -> None:
    """`NotResumable` unless `state` trained in `precision` and holds exactly `model`'s
    trained parameters in their shapes, checked before anything is loaded into it."""
    saved = state["result"]
    trained_in = saved.get("precision", "fp32")  # saved before precision was a setting: fp32
    if trained_in != precision:
        raise NotResumable(
            f"at step {saved['steps']} trained in {trained_in}, this run in {precision}"
        )
    expected = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    weights = state["weights"] if isinstance(state["weights"], dict) else {}
    shapes = {n: getattr(w, "shape", None) for n, w in weights.items()}
    if shapes != expected:
        raise NotResumable("does not fit this model (other trained parameters)")


@contextmanager
def compiled(model: AdaptedLM, enabled: bool) -> Iterator[None]:
    """With `enabled` (`train.compile`), the base model's forward runs under torch.compile
    while training: compiled in place (`nn.Module.compile`), so parameter, state-dict and
    `stored_state` names are those of the eager model; eager again afterwards, for decoding,
    whose shapes change at every step. A compilation that fails (no C compiler, say) fails in
    the first forward pass, as one line naming the fix."""
    if not enabled:
        yield
        return
    from torch._dynamo.exc import TorchDynamoException

    model.base.compile(dynamic=True)  # shapes change at every step: one compile for all
    try:
        yield
    except TorchDynamoException as error:
        cause = getattr(error, "inner_exception", None) or error  # a backend's own error
        reason = f"{type(cause).__name__}: {cause}".strip().splitlines()[0]
        raise UserError(
            f"train.compile: torch.compile failed ({reason}); install a C/C++ compiler (gcc, "
            "g++) and, on a GPU, Triton, or set train.compile to false"
        ) from error
    finally:
        model.base._compiled_call_impl = None  # what nn.Module.compile set: eager again


def resume(
    state: dict[str, Any] | None,
    model: AdaptedLM,
    optimization: Optimization,
    result: TrainResult,
    order_rng: random.Random,
) -> tuple[int, int]:
    """Load a saved `training_state` (if any) into the fresh objects: (epoch, steps to skip)."""
    if state is None:
        return 0, 0
    model.load_state_dict(state["weights"], strict=False)  # the trained ones (`check_fits`)
    optimization.optimizer.load_state_dict(state["optimizer"])
    optimization.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):  # a state saved in fp16
        optimization.scaler.load_state_dict(state["scaler"])
    saved = state["result"]
    result.steps = result.resumed_at = saved["steps"]
    result.seconds = saved["seconds"]
    result.losses = [tuple(x) for x in saved["losses"]]
    result.dev_losses = [tuple(x) for x in saved["dev_losses"]]
    order_rng.setstate(state["epoch_order"])
    set_random_states(state["rng"])
    return state["epoch"], state["position"]
