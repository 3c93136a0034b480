"""`python -m bench perf device --device cuda|cpu`: training and decoding speed of every method
that carries a plain-library equivalent, the harness against that equivalent on the same model,
batches and precision, in one run (so the ratio holds across machines).

Training. Sequences of a fixed length (128 tokens on a GPU, as the issue's anchors), `warm`
untimed optimizer steps then `steps` timed ones, tokens/s counting every token of the timed
steps over their wall-clock time (their CPU time is recorded too: on a shared machine other work
disturbs it less). The harness row is `bench.engine.cell.train_model` as a cell runs it
(`bench.perf.loops.harness_timing`), in the precision `auto` resolves to on the device. The plain
row is `bench.perf.loops.plain_loop` (what one writes by hand, same precision, fused AdamW on CUDA,
same learning rate and clipping) around the library's own model for the method, with the method's
default settings: the `plain` function the method registers (`methods/<name>/plain.py`), e.g.
a transformers model for full fine-tuning, PEFT's `PrefixTuningConfig` and `LoraConfig`, the
`adapters` library's bottleneck adapter. A method without one is not measured.
Each row records both sides' trained parameter counts (equal: the same work). Dropout follows
the harness: a frozen GPT-2 under a prefix trains without it (the authors' choice), so its
plain loop runs the model in eval mode.

MFU: FLOPs per token (`bench.perf.flops`, matrix multiplies only) x tokens/s over the GPU's
dense peak in the training precision (`--peak-tflops` overrides); n/a on a CPU or an unknown GPU.

Memory: on CUDA, `torch.cuda.max_memory_allocated` over the row after
`reset_peak_memory_stats` (the model's weights included; one model on the GPU at a time). On a
CPU n/a: the process's peak RSS is a high-water mark over its whole life, which a later, smaller
row cannot show.

Decoding: new tokens/s at each batch size (beam 5, the harness's `bench.engine.generation.generate`
against `model.generate(num_beams=5)` of the same plain model on the same prompt ids), every row
forced to exactly `new_tokens` new tokens (min = max new tokens), so both sides take the same
number of steps whatever the random weights predict. Both decode under autocast in the
precision training ran in (fp32 weights), as a cell does.

Decoder-only GPT-2-family models only (the mini LMs, `random:gpt2*`, GPT-2 hub checkpoints).
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.engine.cell import BuiltModel, CellData, build, free_memory
from bench.engine.encoding import encode_source
from bench.engine.generation import generate
from bench.engine.loading import check_available, load_model
from bench.engine.precision import autocast, resolve_precision
from bench.errors import UserError
from bench.perf.flops import FLOPS, Flops, flops_per_token, peak_of
from bench.perf.loops import harness_timing, plain_loop
from bench.perf.machine import machine, now
from bench.perf.workload import (
    BEAMS,
    Scale,
    Workload,
    plain_steps,
    train_config,
    workload_cell,
)
from bench.spec.model_specs import BART_ARCHITECTURES, random_architecture
from bench.spec.registry import METHODS
from bench.spec.settings import Cell, DecodeConfig
from bench.spec.task import Example, Task

MIB = 2**20
GPU_SCALE = Scale(128, (8, 64), 20, 3, (1, 32, 128), 64, 64)
# A CPU run of the default small model in about two minutes on 2 cores.
CPU_SCALE = Scale(64, (8, 32), 6, 2, (1, 8, 32), 16, 32)
DEFAULT_MODEL = {"cuda": "random:gpt2-medium", "cpu": "mini"}
# The rows' order (full fine-tuning, then the lightweight methods as the paper lists them);
# another method with a plain equivalent (a plugin's) comes after these, by name.
ROW_ORDER = ("finetune", "finetune-top", "prefix", "lora", "adapter")


# --- the plain models -------------------------------------------------------------------------


def measured_methods() -> tuple[str, ...]:
    """The registered methods that carry a plain-library equivalent (`Method.plain`), in
    `ROW_ORDER`: the methods this benchmark measures."""
    names = [name for name in METHODS.names() if METHODS.get(name).plain]
    ranks = {name: rank for rank, name in enumerate(ROW_ORDER)}
    return tuple(sorted(names, key=lambda name: (ranks.get(name, len(ROW_ORDER)), name)))


def plain_equivalent(
    method: str, base: PreTrainedModel, derived: dict[str, Any]
) -> tuple[Any, str]:
    """`base` made into `method` by the library a user would reach for, with the method's
    default settings (`derived`: what our method derived at build time, the adapters' width):
    the `plain` function the method registered ("module:function"); returns (model, what it is)."""
    entry = METHODS.get(method)
    if entry.plain is None:
        raise ValueError(f"no plain loop for method {method!r}")
    make = pkgutil.resolve_name(entry.plain)
    return make(base, entry.Settings(), derived)


# --- measuring --------------------------------------------------------------------------------


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _speed(tokens: int, seconds: tuple[float, float], device: torch.device) -> dict[str, Any]:
    """A measured row from its (wall, this process's CPU) seconds: tokens/s, both times (CPU
    time, every thread's, is less disturbed by other work on a shared machine), and CUDA's
    peak allocation since `_reset_peak`."""
    peak = None
    if device.type == "cuda":
        peak = round(torch.cuda.max_memory_allocated(device) / MIB, 1)
    wall, cpu = seconds
    return {"tokens_per_s": round(tokens / wall, 1), "seconds": round(wall, 4),
            "cpu_seconds": round(cpu, 4), "peak_memory_mib": peak}  # fmt: skip


def _since(started: tuple[float, float], device: torch.device) -> tuple[float, float]:
    ended = now(device)
    return ended[0] - started[0], ended[1] - started[1]


@dataclass
class Side:
    """One side of a method's comparison: what it trains, and its rows by batch size."""

    what: str
    trained: int
    training: dict[int, dict[str, Any]]
    decoding: dict[int, dict[str, Any]]


def _harness_decode(
    built: BuiltModel, prompts: list[str], batch: int, new_tokens: int
) -> tuple[float, float]:
    config = DecodeConfig(
        num_beams=BEAMS, max_new_tokens=new_tokens, min_new_tokens=new_tokens, batch_size=batch
    )
    started = now(built.device)
    generate(
        model=built.model,
        tokenizer=built.loaded.tokenizer,
        sources=prompts[:batch],
        config=config,
        max_source_tokens=built.train_config.max_source_tokens,
        device=built.device,
        precision=resolve_precision(built.train_config.precision, built.device),
    )
    return _since(started, built.device)


def _harness_side(built: BuiltModel, cell: Cell, scale: Scale, workload: Workload) -> Side:
    """The harness's training rows (as `cell` trains, at each batch size) and, after
    `finalize` as a cell does before decoding, its decoding rows."""
    side, device = Side("bench", built.trained, {}, {}), built.device
    for batch in scale.train_batches:
        timed = cell.model_copy(update={"train": train_config(scale, batch)})
        used = workload.pairs[: (scale.warm + scale.steps) * batch]
        data = CellData(Task(), [Example(s, (t,)) for s, t in used], [], {}, {})
        config = built.train_config.model_copy(update={"batch_size": batch})
        _reset_peak(device)
        wall, cpu, result = harness_timing(timed, data, replace(built, train_config=config),
                                           scale.warm)  # fmt: skip
        if result.steps != scale.warm + scale.steps:
            raise RuntimeError(f"the harness trained {result.steps} steps, not the workload's")
        side.training[batch] = _speed(scale.steps * batch * scale.seq_len, (wall, cpu), device)
    built.model.finalize()
    _harness_decode(built, workload.prompts, 1, 2)  # warm-up
    for batch in scale.decode_batches:
        _reset_peak(device)
        seconds = _harness_decode(built, workload.prompts, batch, scale.new_tokens)
        side.decoding[batch] = _speed(batch * scale.new_tokens, seconds, device)
    return side


def _plain_decode(
    model: Any, ids: torch.Tensor, eos: int, new_tokens: int, device: torch.device
) -> tuple[float, float]:
    started = now(device)
    with autocast(resolve_precision("auto", device), device):  # as a cell decodes
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=BEAMS, do_sample=False,
            max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=eos,
            eos_token_id=eos,
        )  # fmt: skip
    seconds = _since(started, device)
    if out.shape[1] != ids.shape[1] + new_tokens:
        raise RuntimeError(f"generate returned {out.shape[1] - ids.shape[1]} new tokens")
    return seconds


def _plain_side(
    model: Any, what: str, tokenizer: PreTrainedTokenizerBase, context: dict[str, Any],
    scale: Scale, workload: Workload,
) -> Side:  # fmt: skip
    """The plain loop's rows: training by `bench.perf.loops.plain_loop`, decoding by `generate`.
    `context`: the harness's device, base dropout and source budget."""
    device, eos = context["device"], tokenizer.eos_token_id
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    side = Side(what, trained, {}, {})
    for batch in scale.train_batches:
        config = train_config(scale, batch)
        used = workload.pairs[: (scale.warm + scale.steps) * batch]
        steps = plain_steps(tokenizer, used, config, scale.seq_len)
        _reset_peak(device)
        wall, cpu, _ = plain_loop(
            model, steps, eos, config, device, 0, scale.warm, context["dropout"]
        )
        side.training[batch] = _speed(scale.steps * batch * scale.seq_len, (wall, cpu), device)
    model.eval()
    prompts = [encode_source(tokenizer, p, context["max_source"]) for p in workload.prompts]
    ids = torch.tensor(prompts, device=device)
    _plain_decode(model, ids[:1], eos, 2, device)  # warm-up
    for batch in scale.decode_batches:
        _reset_peak(device)
        seconds = _plain_decode(model, ids[:batch], eos, scale.new_tokens, device)
        side.decoding[batch] = _speed(batch * scale.new_tokens, seconds, device)
    return side


def _on(built: BuiltModel, device: torch.device) -> BuiltModel:
    """`build` puts a cell's model on the machine's GPU if it has one: here, on `device`."""
    if built.device == device:
        return built
    built.model.to(device)
    return replace(built, device=device, dependencies={})


def _measure(
    spec: str, method: str, device: torch.device, scale: Scale, workload: Workload | None
) -> tuple[Flops, Side, Side, Workload]:
    """Both sides of one method, one model on the device at a time."""
    cell = workload_cell(spec, method, scale, scale.train_batches[0])
    built = _on(build(cell, {}), device)
    tokenizer = built.loaded.tokenizer
    workload = workload or Workload.make(tokenizer, scale)
    flops = flops_per_token(built.model, scale.seq_len)
    context = {"device": device, "dropout": built.model.base_dropout,
               "max_source": built.train_config.max_source_tokens}  # fmt: skip
    derived = built.model.derived_settings()
    harness = _harness_side(built, cell, scale, workload)
    del built
    free_memory()  # a GPU's memory back before the next model comes
    model, what = plain_equivalent(method, load_model(spec, 0).model, derived)
    plain = _plain_side(model.to(device), what, tokenizer, context, scale, workload)
    del model
    free_memory()
    return flops, harness, plain, workload


# --- the benchmark --------------------------------------------------------------------------

MEMORY = {
    "cuda": "torch.cuda.max_memory_allocated over the row (weights included), MiB",
    "cpu": "n/a on CPU: the process's peak RSS is a lifetime high-water mark",
}


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"--device cuda: torch {torch.__version__} sees no CUDA GPU on this machine; run it "
            "on a GPU machine, or use --device cpu"
        )
    return torch.device(name)


def _scaled(scale: Scale) -> str:
    """What a CPU run shrinks, next to the GPU run's sizes."""

    def sizes(s: Scale) -> tuple[str, ...]:
        return (
            f"sequences of {s.seq_len} tokens",
            f"training batches {', '.join(map(str, s.train_batches))}",
            f"{s.steps} timed steps after {s.warm}",
            f"decoding batches {', '.join(map(str, s.decode_batches))}",
            f"{s.new_tokens} new tokens from {s.prompt_tokens}-token prompts",
        )

    changed = [f"{a} (GPU: {b})" for a, b in zip(sizes(scale), sizes(GPU_SCALE), strict=True)]
    return "scaled down for a CPU: " + "; ".join(changed)


def _rows(
    method: str, flops: Flops, harness: Side, plain: Side, peak: float | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The method's training rows (with MFU) and decoding rows, harness and plain side by side."""
    training = []
    for batch, ours in harness.training.items():
        theirs = plain.training[batch]
        for row in (ours, theirs):
            mfu = None if peak is None else flops.total * row["tokens_per_s"] / (peak * 1e12)
            row["mfu"] = None if mfu is None else round(mfu, 4)
        training.append({
            "method": method, "batch": batch,
            "flops_per_token": {**vars(flops), "total": flops.total},
            "trained": {"harness": harness.trained, "plain": plain.trained},
            "plain_loop": plain.what, "harness": ours, "plain": theirs,
            "ratio": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 3),
        })  # fmt: skip
    decoding = [
        {"method": method, "batch": batch, "harness": ours, "plain": plain.decoding[batch],
         "ratio": round(ours["tokens_per_s"] / plain.decoding[batch]["tokens_per_s"], 3)}
        for batch, ours in harness.decoding.items()
    ]  # fmt: skip
    return training, decoding


def throughput_benchmark(
    device_name: str,
    model: str | None = None,
    peak_tflops: float | None = None,
    steps: int | None = None,
    new_tokens: int | None = None,
    scale: Scale | None = None,
    methods: tuple[str, ...] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """`methods` (by default `measured_methods()`), harness and plain, on `device_name`:
    training tokens/s, MFU and peak memory at each training batch, decoding new tokens/s at
    each decoding batch (`scale`: the GPU's or the CPU's sizes by default; `steps` and
    `new_tokens` shrink it). `log` hears what starts, once bad input is ruled out, and each
    measured row."""
    device = _device(device_name)
    spec = model or DEFAULT_MODEL[device.type]
    if random_architecture(spec) in BART_ARCHITECTURES:
        raise UserError(f"the throughput benchmark measures decoder-only models, not {spec}")
    measured = measured_methods()
    methods = measured if methods is None else methods
    if unknown := sorted(set(methods) - set(measured)):
        raise UserError(f"no plain loop for {unknown}; measured: {', '.join(measured)}")
    check_available(spec)
    scale = scale or (GPU_SCALE if device.type == "cuda" else CPU_SCALE)
    scale = replace(scale, steps=steps or scale.steps, new_tokens=new_tokens or scale.new_tokens)
    precision = resolve_precision("auto", device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak, source = (peak_tflops, "--peak-tflops") if peak_tflops else peak_of(gpu, precision)
    log(f"timing every method's training and decoding of {spec} on {device}: harness, plain")
    training: list[dict[str, Any]] = []
    decoding: list[dict[str, Any]] = []
    workload = None
    for method in methods:
        flops, harness, plain, workload = _measure(spec, method, device, scale, workload)
        rows = _rows(method, flops, harness, plain, peak)
        training += rows[0]
        decoding += rows[1]
        for row in rows[0] + rows[1]:
            kind = "training" if row in rows[0] else "decoding"
            log(f"{method} {kind} batch {row['batch']}: {row['harness']['tokens_per_s']:,.0f} "
                f"tokens/s, plain {row['plain']['tokens_per_s']:,.0f}")  # fmt: skip
    return {
        "benchmark": "throughput", "device": device.type, "gpu": gpu, "model": spec,
        "precision": precision, "decode_precision": precision,
        "sequence_length": scale.seq_len, "train_batches": list(scale.train_batches),
        "warm_steps": scale.warm, "timed_steps": scale.steps,
        "decode": {"num_beams": BEAMS, "new_tokens": scale.new_tokens,
                   "prompt_tokens": scale.prompt_tokens, "batches": list(scale.decode_batches)},
        "scaled": None if device.type == "cuda" else _scaled(scale),
        "peak_tflops": peak, "peak_source": source, "flops": FLOPS,
        "memory": MEMORY[device.type],
        "versions": {"cuda": torch.version.cuda, **{
            name: metadata.version(name) for name in ("torch", "transformers", "peft", "adapters")
        }},
        "machine": machine(), "training": training, "decoding": decoding,
    }  # fmt: skip


def _cells(row: dict[str, Any], key: str, fmt: str) -> list[str]:
    values = [row["harness"][key], row["plain"][key]]
    return ["n/a" if v is None else format(v, fmt) for v in values]


def throughput_table(result: dict[str, Any]) -> str:
    """The benchmark as a user reads it: a header, the training table, the decoding table."""
    where = result["gpu"] or "CPU (no GPU)"
    decode = result["decode"]
    peak = result["peak_tflops"]
    lines = [
        f"{result['model']} on {where}; training in {result['precision']}, sequences of "
        f"{result['sequence_length']} tokens, {result['timed_steps']} timed steps after "
        f"{result['warm_steps']}",
        f"MFU against {peak} TFLOPS ({result['peak_source']})" if peak else
        "MFU n/a: no known peak for this device (give --peak-tflops)",
        f"peak memory: {result['memory']}",
        *([result["scaled"]] if result["scaled"] else []),
        "",
        f"{'training':<14}{'batch':>6}{'tokens/s':>12}{'plain':>12}{'ratio':>7}"
        f"{'MFU':>8}{'plain':>8}{'MiB':>9}{'plain':>9}  plain loop",
    ]  # fmt: skip
    for row in result["training"]:
        speed, mfu = _cells(row, "tokens_per_s", ",.0f"), _cells(row, "mfu", ".1%")
        memory = _cells(row, "peak_memory_mib", ",.0f")
        lines.append(
            f"{row['method']:<14}{row['batch']:>6}{speed[0]:>12}{speed[1]:>12}"
            f"{row['ratio']:>7.2f}{mfu[0]:>8}{mfu[1]:>8}{memory[0]:>9}{memory[1]:>9}"
            f"  {row['plain_loop']}"
        )
    lines += [
        "",
        f"decoding, beam {decode['num_beams']}, {decode['new_tokens']} new tokens from "
        f"{decode['prompt_tokens']}-token prompts, {result['decode_precision']}; plain: "
        "model.generate",
        f"{'method':<14}{'batch':>6}{'new tok/s':>12}{'plain':>12}{'ratio':>7}"
        f"{'MiB':>9}{'plain':>9}",
    ]
    for row in result["decoding"]:
        speed, memory = _cells(row, "tokens_per_s", ",.0f"), _cells(row, "peak_memory_mib", ",.0f")
        lines.append(
            f"{row['method']:<14}{row['batch']:>6}{speed[0]:>12}{speed[1]:>12}"
            f"{row['ratio']:>7.2f}{memory[0]:>9}{memory[1]:>9}"
        )
    return "\n".join(lines)
