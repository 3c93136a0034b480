"""`python -m bench plan` (and `run --dry-run`): what a grid will cost, before it runs.

Per cell: its status in the store (stored, held by a live runner, to run), training steps,
tokens trained and decoded, FLOPs (`bench.perf.flops`: the FLOP model MFU rests on, extended to
encoder-decoders and beam search), estimated peak memory and time. Everything is an estimate
and says what it rests on:
- tokens: a seeded sample of `SAMPLE` pairs of each training set and of each eval split's
  inputs, encoded as the cell encodes them (truncated to its `max_*_tokens`; a training batch
  padded to its longest pair, batches drawn at random); a hub model whose tokenizer cannot be
  loaded here counts characters / 4;
- decoded tokens: per input, the references' mean length + 1 (the eos), within the cell's
  min/max new tokens, times its beams; decoding FLOPs as the harness's beam search runs them
  (the prompt read once, its cache shared by the beams);
- time on a named GPU: FLOPs / (its dense datasheet peak x MFU), the MFU given (`--mfu`),
  measured by `perf device --json` (`--mfu-from`: the harness's training rows, per method where
  measured), or `ASSUMED_MFU`, stated. Beam search on a GPU is bound by latency, not FLOPs: its
  hours at a training MFU are a lower bound. Fixed costs (data, build, scoring) are left out;
- time on this machine: seconds per training FLOP and per decoding FLOP and a cell's fixed
  seconds (data, build, scoring), fitted to the store's finished cells of the same model where
  it has any, else measured by a calibration (a short copy of the first cell to run, run here
  as one worker runs it); cells are then scheduled over the executor's workers in grid order,
  a hybrid after its dependencies, plus the grid's start and report (`GRID_SECONDS`);
- memory: fp32 weights, gradients and AdamW's two moments of the trained parameters, stored
  activations (Korthikanti et al. 2022: 34 d + 5 a T bytes per token and layer in 16-bit,
  twice in fp32, every layer) and the logits three times in fp32; decoding: the weights, the
  beams' key/value cache and logits. The larger of the two.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.spec.settings import Cell

SAMPLE = 2000  # pairs and inputs tokenized per training set and eval split
ASSUMED_MFU = 0.3  # without a measurement: a typical training MFU of a 0.3-1B model in bf16
CALIBRATION_STEPS = 8
CALIBRATION_INPUTS = 8
GRID_SECONDS = 10.0  # a grid's start (driver, workers importing torch) and report, here
CHARS_PER_TOKEN = 4  # GPT-2's BPE on English, for a hub model whose tokenizer is not here


@dataclass(frozen=True)
class Workload:
    """What a cell computes, from its data and settings (token counts are estimates)."""

    examples: int  # training pairs
    steps: int
    seen: int  # pairs trained on, over every step
    source: float  # mean tokens of a pair's source, padded as batched (decoder-only: 0)
    target: float  # of its target (decoder-only: the whole sequence)
    tokens_trained: int
    inputs: int  # distinct inputs decoded
    prompt: float  # mean prompt tokens
    new_tokens: int  # per input and beam
    tokens_decoded: int  # new tokens over every input and beam
    counted: str  # how tokens were counted


@dataclass(frozen=True)
class Speed:
    """Seconds per training FLOP and per decoding FLOP, a cell's fixed seconds, and whence."""

    train: float
    decode: float
    fixed: float
    source: str


@dataclass
class CellPlan:
    cell: Cell
    status: str  # stored | held | to run
    work: Workload | None
    train_flops: float | None
    decode_flops: float | None
    memory_gb: float | None
    seconds: float | None
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        c = self.cell
        return {
            "cell": c.id,
            "task": c.task,
            "method": c.label,
            "seed": c.seed,
            "n_train": c.n_train,
            "sample": c.sample,
            "status": self.status,
            **(asdict(self.work) if self.work else {}),
            "train_flops": self.train_flops,
            "decode_flops": self.decode_flops,
            "peak_memory_gb": self.memory_gb,
            "seconds": self.seconds,
            "note": self.note,
        }


# --- tokens ----------------------------------------------------------------------------------
@cache
def _tokenizer(spec: str) -> Any:
    from bench.engine.loading import tokenizer_of

    try:
        return tokenizer_of(spec)
    except (OSError, ValueError):
        return None


def _lengths(spec: str, texts: list[str], limit: int) -> tuple[list[int], str]:
    tokenizer = _tokenizer(spec)
    if tokenizer is None:
        return [min(limit, math.ceil(len(t) / CHARS_PER_TOKEN) + 1) for t in texts], "chars / 4"
    from bench.engine.encoding import encode_texts

    return [len(ids) for ids in encode_texts(tokenizer, texts, limit)], "tokenizer"


def _padded(lengths: list[int], batch: int) -> float:
    """Mean tokens per row once rows are drawn at random into batches padded to their longest."""
    shuffled = random.Random(0).sample(lengths, len(lengths))
    chunks = [shuffled[i : i + batch] for i in range(0, len(shuffled), batch)]
    return sum(len(c) * max(c) for c in chunks) / len(shuffled)


@cache
def _examples(task: str, split: str, data_dir: Path | None) -> list[Any]:
    from bench.spec.registry import TASKS

    return TASKS.get(task)().load(split, data_dir)


def workload(cell: Cell, data_dir: Path | None, trains: bool, encoder_decoder: bool) -> Workload:
    """`cell`'s training and decoding work (raises UserError when its data is absent)."""
    from bench.spec.task import DEV, TRAIN, low_data_subset, training_pairs

    examples = low_data_subset(_examples(cell.task, TRAIN, data_dir), cell.n_train, cell.sample)
    pairs = training_pairs(examples)
    cfg = cell.train
    sample = random.Random(0).sample(pairs, min(SAMPLE, len(pairs)))
    src, counted = _lengths(cell.model, [s for s, _ in sample], cfg.max_source_tokens)
    tgt, _ = _lengths(cell.model, [t for _, t in sample], cfg.max_target_tokens)
    micro = cfg.batch_size
    if encoder_decoder:
        source, target = _padded(src, micro), _padded([t + 1 for t in tgt], micro)
    else:
        source, target = 0.0, _padded([s + t for s, t in zip(src, tgt, strict=True)], micro)
    per_step = cfg.batch_size * cfg.grad_accum
    steps = min(cfg.max_steps or math.inf, cfg.epochs * math.ceil(len(pairs) / per_step))
    steps = int(steps) if trains else 0
    seen = min(steps * per_step, cfg.epochs * len(pairs))
    if cfg.dev_examples:  # a forward pass over the dev pairs after each epoch, as training
        seen += cfg.epochs * min(cfg.dev_examples, len(_examples(cell.task, DEV, data_dir)))
    inputs = list(
        dict.fromkeys(
            ex.source
            for split in cell.splits
            for ex in _examples(cell.task, split, data_dir)[: cell.eval_limit]
        )
    )
    references = [
        ex.references[0] for split in cell.splits for ex in _examples(cell.task, split, data_dir)
    ]
    prompts, _ = _lengths(cell.model, _sampled(inputs), cfg.max_source_tokens)
    refs, _ = _lengths(cell.model, _sampled(references), cfg.max_target_tokens)
    dec = cell.decode
    new = min(dec.max_new_tokens, max(dec.min_new_tokens, round(statistics.mean(refs)) + 1))
    return Workload(
        examples=len(pairs),
        steps=steps,
        seen=seen,
        source=source,
        target=target,
        tokens_trained=round(seen * (statistics.mean(src) + statistics.mean(tgt))),
        inputs=len(inputs),
        prompt=statistics.mean(prompts),
        new_tokens=new,
        tokens_decoded=len(inputs) * new * dec.num_beams,
        counted=counted,
    )


def _sampled(texts: list[str]) -> list[str]:
    return random.Random(0).sample(texts, min(SAMPLE, len(texts)))


# --- FLOPs and memory ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Built:
    model: Any  # AdaptedLM on the meta device, as it trains
    trained: int
    total: int  # every parameter the cell holds (base, method, models it decodes with)
    decoders: tuple[Any, ...]  # the models beam search runs


@cache
def model_config(spec: str) -> tuple[Any, str | None]:
    """The model's config and a note when it is a stand-in (`planning_config`)."""
    from bench.engine.loading import planning_config

    return planning_config(spec)


@cache
def _built(spec: str, method: str, settings_json: str) -> _Built:
    import json

    from bench.engine.adapted import count
    from bench.engine.params import meta_build
    from bench.spec.registry import METHODS

    config = model_config(spec)[0]
    entry = METHODS.get(method)
    settings = entry.Settings.model_validate(json.loads(settings_json))
    model, trained, dependencies = meta_build(
        config, entry, settings, finalize=False, tokenizer=_tokenizer(spec)
    )
    decoders = (model, *dependencies.values()) if entry.keeps_dependencies else (model,)
    total = count(list(model.parameters())) + sum(
        count(list(d.parameters())) for d in dependencies.values()
    )
    return _Built(model, trained, total, decoders)


def _flops(built: _Built, work: Workload, cell: Cell) -> tuple[float, float]:
    from bench.perf.flops import decode_flops, example_flops

    per_example = example_flops(built.model, round(work.source), round(work.target)).total
    beams = cell.decode.num_beams
    per_input = sum(
        decode_flops(m, round(work.prompt), work.new_tokens, beams) for m in built.decoders
    )
    return float(work.seen * per_example), float(work.inputs * per_input)


def peak_memory(built: _Built, work: Workload, cell: Cell, half: bool) -> float:
    """Estimated peak bytes of training and decoding (see the module docstring)."""
    config = built.model.base.config
    width, layers = config.hidden_size, config.num_hidden_layers
    layers *= 2 if config.is_encoder_decoder else 1
    heads, vocab = config.num_attention_heads, config.vocab_size
    unit = 2 if half else 4
    prefix = built.model.prefix_length
    rows = cell.train.batch_size * (work.source + work.target)
    keys = work.source + work.target + prefix
    activations = layers * rows * (34 * width + 5 * heads * keys) * unit / 2 if work.steps else 0
    logits = 3 * 4 * cell.train.batch_size * work.target * vocab if work.steps else 0
    training = 4 * built.total + 12 * built.trained + activations + logits
    beams = cell.decode.batch_size * cell.decode.num_beams
    context = work.prompt + work.new_tokens + prefix
    cache_bytes = 2 * layers * beams * context * width * unit * len(built.decoders)
    decoding = 4 * built.total + cache_bytes + 4 * beams * vocab
    return max(training, decoding)


# --- time ------------------------------------------------------------------------------------
def gpu_speed(
    gpu: str | None,
    peak_tflops: float | None,
    mfu: float | None,
    precision: str,
    measured: dict[str, float] | None = None,
) -> tuple[Speed, dict[str, Speed]]:
    """Seconds per FLOP on a GPU named `gpu` (its datasheet peak) or of `peak_tflops`."""
    from bench.perf.flops import peak_of

    if peak_tflops is None:
        peak_tflops, entry = peak_of(gpu, precision)
        if peak_tflops is None:
            raise UserError(
                f"--gpu {gpu}: no datasheet peak for it in {precision}; give --peak-tflops T "
                "(its dense TFLOPS in the training precision)"
            )
    else:
        entry = f"{peak_tflops:g} TFLOPS (given)"
    if mfu is not None:
        used, whence = mfu, "given"
    elif measured:
        used, whence = statistics.median(measured.values()), "measured by perf device"
    else:
        used, whence = ASSUMED_MFU, "assumed: no measurement given"

    def at(mfu: float, whence: str) -> Speed:
        seconds = 1 / (peak_tflops * 1e12 * mfu)
        return Speed(seconds, seconds, 0.0, f"{entry} x MFU {mfu:.2f} ({whence})")

    per_method = {m: at(v, "measured by perf device") for m, v in (measured or {}).items()}
    return at(used, whence), per_method if mfu is None else {}


def mfu_from(path: Path) -> tuple[str | None, dict[str, float]]:
    """(the GPU, training MFU per method) of `perf device --json` output: the harness's best
    batch."""
    import json

    try:
        result = json.loads(path.read_text())
        best: dict[str, float] = {}
        for row in result["training"]:
            if row["harness"].get("mfu"):
                best[row["method"]] = max(best.get(row["method"], 0.0), row["harness"]["mfu"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"--mfu-from {path}: not `perf device --json` output ({error})") from None
    if not best:
        raise UserError(f"--mfu-from {path}: no MFU in it (measured on a CPU or an unknown GPU)")
    return result.get("gpu"), best


def schedule(cells: list[Cell], seconds: dict[str, float], workers: int) -> float:
    """Wall seconds of running `cells` in order on `workers` slots, each cell after its
    dependencies (as the runner dispatches them)."""
    free = [0.0] * max(1, workers)
    ends: dict[str, float] = {}
    for cell in cells:
        ready = max((ends.get(d, 0.0) for d in cell.depends.values()), default=0.0)
        slot = min(range(len(free)), key=free.__getitem__)
        start = max(free[slot], ready)
        ends[cell.id] = free[slot] = start + seconds.get(cell.id, 0.0)
    return max(ends.values(), default=0.0)


@dataclass
class Plan:
    grid: str
    model: str
    target: str  # where the time is estimated
    speed: Speed | None
    cells: list[CellPlan]
    wall_seconds: float | None
    notes: list[str]

    def totals(self) -> dict[str, Any]:
        todo = [c for c in self.cells if c.status == "to run"]
        known = [c for c in todo if c.work is not None]
        seconds = sum(c.seconds or 0.0 for c in known)
        return {
            "cells": len(self.cells),
            "to_run": len(todo),
            "stored": sum(c.status == "stored" for c in self.cells),
            "held": sum(c.status == "held" for c in self.cells),
            "unplanned": len(todo) - len(known),
            "steps": sum(c.work.steps for c in known),
            "tokens_trained": sum(c.work.tokens_trained for c in known),
            "tokens_decoded": sum(c.work.tokens_decoded for c in known),
            "flops": sum((c.train_flops or 0) + (c.decode_flops or 0) for c in known),
            "seconds": seconds,
            "hours": seconds / 3600,
            "wall_seconds": self.wall_seconds,
            "peak_memory_gb": max((c.memory_gb or 0 for c in known), default=None),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "grid": self.grid,
            "model": self.model,
            "target": self.target,
            "speed": None if self.speed is None else asdict(self.speed),
            "notes": self.notes,
            "cells": [c.as_json() for c in self.cells],
            "totals": self.totals(),
        }


def statuses(cells: list[Cell], results_dir: Path) -> dict[str, str]:
    """stored / held / to run of each cell, read from the store without writing it."""
    from bench.results.store import Store

    path = results_dir / "bench.sqlite"
    if not path.is_file():
        return {c.id: "to run" for c in cells}
    store = Store(path, readonly=True)
    try:
        finished = Store.finished_cells(path)
        return {
            c.id: "stored" if c.id in finished else "held" if store.held(c.id) else "to run"
            for c in cells
        }
    finally:
        store.close()


def plan_cells(
    name: str,
    model: str,
    cells: list[Cell],
    results_dir: Path,
    data_dir: Path | None,
    speed_of: Any,
) -> Plan:
    """The plan of `cells`; `speed_of(plans) -> (Speed, a method's own Speed where measured,
    target, workers or None)` prices them once their FLOPs are known."""
    config, note = model_config(model)
    status = statuses(cells, results_dir)
    plans = [_plan_cell(c, status[c.id], data_dir, config.is_encoder_decoder) for c in cells]
    speed, per_method, target, workers = speed_of(plans)
    for p in plans:
        if p.work is not None and p.status == "to run":
            rates = per_method.get(p.cell.method, speed)
            p.seconds = rates.fixed + p.train_flops * rates.train + p.decode_flops * rates.decode
    wall = None
    if workers:
        todo = [p.cell for p in plans if p.status == "to run"]
        seconds = {p.cell.id: p.seconds or 0.0 for p in plans}
        wall = schedule(todo, seconds, workers) + GRID_SECONDS if todo else 0.0
    counted = {p.work.counted for p in plans if p.work is not None}
    notes = [note] if note else []
    if "chars / 4" in counted:
        notes.append(f"no tokenizer for {model} here: tokens counted as characters / 4")
    return Plan(name, model, target, speed, plans, wall, notes)


def _plan_cell(cell: Cell, status: str, data_dir: Path | None, encoder_decoder: bool) -> CellPlan:
    import json

    try:
        built = _built(cell.model, cell.method, json.dumps(cell.settings, sort_keys=True))
        work = workload(cell, data_dir, built.trained > 0, encoder_decoder)
    except UserError as error:
        return CellPlan(cell, status, None, None, None, None, None, str(error))
    train, decode = _flops(built, work, cell)
    half = cell.train.precision in ("bf16", "fp16")
    memory = peak_memory(built, work, cell, half) / 1e9
    return CellPlan(cell, status, work, train, decode, memory, None)


# --- this machine --------------------------------------------------------------------------
def past_speed(plans: list[CellPlan], results_dir: Path, data_dir: Path | None) -> Speed | None:
    """Rates fitted to the store's finished cells of the plan's model (None without any)."""
    import json

    from bench.results.store import Store

    path = results_dir / "bench.sqlite"
    if not path.is_file() or not plans:
        return None
    checkpoint = plans[0].cell.checkpoint
    store = Store(path, readonly=True)
    try:
        rows = store.db.execute(
            "SELECT config, timings, provenance FROM runs WHERE status='done' AND checkpoint=?",
            (checkpoint,),
        ).fetchall()
    finally:
        store.close()
    sums = [0.0] * 5  # train s, train FLOPs, decode s, decode FLOPs, fixed s
    n = 0
    for row in rows:
        cell = Cell.model_validate_json(row["config"])
        past = _plan_cell(cell, "stored", data_dir, model_config(cell.model)[0].is_encoder_decoder)
        timings, provenance = json.loads(row["timings"]), json.loads(row["provenance"])
        if past.work is None or not past.train_flops:
            continue
        decode = _decoded(past, provenance.get("decoding", {}).get("new_tokens"))
        for i, v in enumerate((timings["train"], past.train_flops, timings["generate"], decode,
                               timings["setup"] + timings["score"])):  # fmt: skip
            sums[i] += v
        n += 1
    if not sums[1] or not sums[3]:
        return None
    return Speed(
        sums[0] / sums[1], sums[2] / sums[3], sums[4] / n, f"{n} finished cells of this model"
    )


def _decoded(plan: CellPlan, new_tokens: int | None) -> float:
    """`plan`'s decoding FLOPs for the `new_tokens` its run did decode (not the estimate)."""
    assert plan.work is not None and plan.decode_flops is not None
    if not new_tokens or not plan.work.inputs:
        return plan.decode_flops
    return plan.decode_flops * new_tokens / (plan.work.inputs * plan.work.new_tokens)


def calibrated_speed(plans: list[CellPlan], data_dir: Path | None, threads: int) -> Speed:
    """Rates measured by running a short copy of the first plannable cell to run, here."""
    import torch

    from bench.engine.cell import run_cell

    first = next((p for p in plans if p.status == "to run" and p.work and not p.cell.depends), None)
    if first is None:
        raise UserError("nothing to calibrate on: no cell to run has its data here")
    cell = first.cell
    short = cell.model_copy(
        update={
            "train": cell.train.model_copy(
                update={"max_steps": CALIBRATION_STEPS, "dev_examples": 0}
            ),
            "eval_limit": CALIBRATION_INPUTS,
            "splits": cell.splits[:1],
        }
    )
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    began = time.time()
    try:
        record = run_cell(short, data_dir)
    finally:
        torch.set_num_threads(before)
    planned = _plan_cell(short, "to run", data_dir, model_config(cell.model)[0].is_encoder_decoder)
    decode = _decoded(planned, record.provenance["decoding"]["new_tokens"])
    t = record.timings
    return Speed(
        t["train"] / planned.train_flops,
        t["generate"] / max(decode, 1.0),
        t["setup"] + t["score"],
        f"a calibration here: {CALIBRATION_STEPS} steps and {CALIBRATION_INPUTS} inputs of "
        f"{cell.describe()}, {threads} thread(s), {time.time() - began:.1f}s",
    )


# --- the whole grid --------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where to price the plan: a GPU (by name, or its peak), else this machine."""

    gpu: str | None = None
    peak_tflops: float | None = None
    mfu: float | None = None
    mfu_file: Path | None = None
    threads: int = 1  # torch threads a cell runs with here (the process executor's 1)

    @property
    def on_gpu(self) -> bool:
        return bool(self.gpu or self.peak_tflops or self.mfu_file)


def plan_grid(
    grid: str | Path,
    target: Target,
    *,
    results_dir: Path,
    data_dir: Path | None = None,
    model: str | None = None,
    overrides: tuple[str, ...] = (),
    seeds: list[int] | None = None,
    plugins: tuple[str, ...] = (),
) -> Plan:
    """The plan of a grid (as `run` would expand it, with the same overrides), priced on
    `target`; reads the store, never writes it."""
    from bench.spec.grid import expand, load_grid

    if target.mfu is not None and not 0 < target.mfu <= 1:
        raise UserError(f"--mfu {target.mfu}: a fraction of the peak, in (0, 1]")
    spec, _ = load_grid(str(grid), model, plugins, overrides, seeds)
    cells = expand(spec)

    def price(plans: list[CellPlan]) -> tuple[Speed, dict[str, Speed], str, int | None]:
        if target.on_gpu:
            return _gpu_price(target, cells)
        speed = past_speed(plans, results_dir, data_dir) or calibrated_speed(
            plans, data_dir, target.threads
        )
        return speed, {}, "this machine", _workers(target.threads)

    return plan_cells(spec.name, spec.model, cells, results_dir, data_dir, price)


def _gpu_price(target: Target, cells: list[Cell]) -> tuple[Speed, dict[str, Speed], str, None]:
    from bench.perf.flops import peak_of

    gpu, measured = (None, {}) if target.mfu_file is None else mfu_from(target.mfu_file)
    name = target.gpu or gpu
    precisions = {c.train.precision for c in cells}
    precision = precisions.pop() if len(precisions) == 1 else "auto"
    if precision == "auto":  # as `resolve_precision` on a GPU: bf16 where it has it
        precision = "bf16" if peak_of(name, "bf16")[0] else "fp32"
    speed, per_method = gpu_speed(name, target.peak_tflops, target.mfu, precision, measured)
    return speed, per_method, name or f"{target.peak_tflops:g} TFLOPS", None


def _workers(threads: int) -> int:
    """Cells side by side here, as `--executor auto` runs them: one at a time on a GPU, else
    one worker per `threads` cores."""
    import torch

    from bench.run.process_executor import usable_cores

    return 1 if torch.cuda.is_available() else max(1, usable_cores() // threads)
