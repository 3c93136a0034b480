"""`python -m bench perf --device cuda|cpu`: training and decoding speed of every method, the
harness against plain transformers + PEFT on the same model, batches and precision, in one run
(so the ratio holds across machines; issue 16's measuring command).

Training. Sequences of a fixed length (128 tokens on a GPU, as the issue's anchors), `warm`
untimed optimizer steps then `steps` timed ones, tokens/s counting every token of the timed
steps over their wall-clock time (their CPU time is recorded too: on a shared machine other work
disturbs it less). The harness row is `bench.engine.cell.train_model` as a cell runs it
(`bench.perf.timing.harness_timing`), in the precision `auto` resolves to on the device. The plain
row is `bench.perf.timing.plain_loop` (what one writes by hand, same precision, fused AdamW on CUDA,
same learning rate and clipping) around the library's own model for the method, with the method's
default settings: full fine-tuning a transformers model; FT-top the same with every parameter
but the top k blocks and the final norm frozen; prefix-tuning PEFT's `PrefixTuningConfig` with
the MLP reparametrization (`prefix_projection`, the same length and hidden size); LoRA PEFT's
`LoraConfig` (the same rank, alpha, dropout and target modules); adapters the `adapters` library
(AdapterHub) with the same bottleneck config and width as ours, which uses that library too.
Each row records both sides' trained parameter counts (equal: the same work). Dropout follows
the harness: a frozen GPT-2 under a prefix trains without it (the authors' choice), so its
plain loop runs the model in eval mode.

FLOPs per token (`flops_per_token`), counting matrix multiplies only (biases, norms, softmax,
activations and the embedding lookup left out, as Kaplan et al. and PaLM do), from the
harness's built model, so LoRA's and the adapters' own layers count:
- forward: 2 N + 4 L d T, with N the weights of every linear map a token goes through (the
  blocks' projections, a method's LoRA or adapter layers, the LM head), L blocks of width d,
  and T the keys each query attends to (the sequence plus a prefix; all T, not the causal half,
  as PaLM counts): QK^T and AV are 2 T d each per layer;
- backward, activation gradients: 2 N' + 8 L' d T over the blocks from the lowest one holding a
  trained parameter up, and the head (an embedding or a prefix trained: every block). It counts
  that block's input projection too, which autograd skips when nothing below it trains: an
  upper bound by one projection;
- backward, weight gradients: 2 x the trained linear weights.
Full fine-tuning is then 6 N + 12 L d T (PaLM's formula); FT-top, prefix, LoRA and adapters do
what they actually do: a frozen base costs its forward and the activation gradients, not its
weight gradients. Prefix-tuning's MLP runs once per step on L rows, not per token (about 0.1%
of gpt2-medium's FLOPs at batch 8): left out. gpt2-medium on 128 tokens: 2.16 GFLOPs per token
for full fine-tuning, 1.45 for prefix-tuning and LoRA, 1.51 for adapters, 0.93 for FT-top2.
MFU = FLOPs per token x tokens/s / the GPU's dense peak in the training precision (`PEAKS`,
from NVIDIA's datasheets; `--peak-tflops` overrides); n/a on a CPU or an unknown GPU.

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

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from bench.engine.adapted import AdaptedLM
from bench.engine.cell import BuiltModel, CellData, build, free_memory
from bench.engine.encoding import encode_pairs, encode_source
from bench.engine.generation import generate
from bench.engine.loading import check_available, load_model
from bench.engine.precision import autocast, resolve_precision
from bench.errors import UserError
from bench.perf.timing import harness_timing, machine, now, plain_loop
from bench.spec.model_specs import BART_ARCHITECTURES, checkpoint_id, random_architecture
from bench.spec.registry import METHODS
from bench.spec.settings import Cell, DecodeConfig, TrainConfig
from bench.spec.task import Example, Task

METHODS_MEASURED = ("finetune", "finetune-top", "prefix", "lora", "adapter")
BEAMS = 5
MIB = 2**20


@dataclass(frozen=True)
class Scale:
    """The sizes of a run: sequence length, training batches and steps, decoding batches."""

    seq_len: int
    train_batches: tuple[int, ...]
    steps: int
    warm: int
    decode_batches: tuple[int, ...]
    new_tokens: int
    prompt_tokens: int


GPU_SCALE = Scale(128, (8, 64), 20, 3, (1, 32, 128), 64, 64)
# A CPU run of the default small model in about two minutes on 2 cores.
CPU_SCALE = Scale(64, (8, 32), 6, 2, (1, 8, 32), 16, 32)
DEFAULT_MODEL = {"cuda": "random:gpt2-medium", "cpu": "mini"}

# Dense peak TFLOPS (no sparsity) by training precision, from NVIDIA's datasheets; fp32 is the
# CUDA-core rate (PyTorch keeps TF32 off for matmuls by default). The first pattern that matches
# `torch.cuda.get_device_name` wins. No bf16 before Ampere. The A10G (AWS) has no datasheet.
PEAKS: tuple[tuple[str, str, dict[str, float]], ...] = (
    (r"H100.*PCIe", "H100 PCIe", {"bf16": 756, "fp16": 756, "fp32": 51}),
    (r"H100.*NVL", "H100 NVL", {"bf16": 835, "fp16": 835, "fp32": 60}),
    (r"H100", "H100 SXM", {"bf16": 989, "fp16": 989, "fp32": 67}),
    (r"H200.*NVL", "H200 NVL", {"bf16": 835, "fp16": 835, "fp32": 60}),
    (r"H200", "H200 SXM", {"bf16": 989, "fp16": 989, "fp32": 67}),
    (r"A100", "A100", {"bf16": 312, "fp16": 312, "fp32": 19.5}),
    (r"L40S", "L40S", {"bf16": 362, "fp16": 362, "fp32": 91.6}),
    (r"L40\b", "L40", {"bf16": 181, "fp16": 181, "fp32": 90.5}),
    (r"\bL4\b", "L4", {"bf16": 121, "fp16": 121, "fp32": 30.3}),
    (r"\bA10\b", "A10", {"bf16": 125, "fp16": 125, "fp32": 31.2}),
    (r"V100S", "V100S PCIe", {"fp16": 130, "fp32": 16.4}),
    (r"V100.*PCI", "V100 PCIe", {"fp16": 112, "fp32": 14}),
    (r"V100", "V100 SXM2", {"fp16": 125, "fp32": 15.7}),
    (r"RTX 4090", "GeForce RTX 4090", {"bf16": 165.2, "fp16": 165.2, "fp32": 82.6}),
    (r"\bT4\b", "T4", {"fp16": 65, "fp32": 8.1}),
)


def peak_of(gpu: str | None, precision: str) -> tuple[float | None, str | None]:
    """(dense peak TFLOPS, which table entry) of a GPU by name, or (None, None) when unknown."""
    for pattern, name, peaks in PEAKS if gpu else ():
        if re.search(pattern, gpu):
            value = peaks.get(precision)
            return value, f"{name}, {precision} dense (datasheet)" if value else None
    return None, None


# --- FLOPs per token ------------------------------------------------------------------------


@dataclass(frozen=True)
class Flops:
    """Per-token FLOPs of one training step (see the module docstring for what counts)."""

    forward: int
    activation_grads: int
    weight_grads: int

    @property
    def total(self) -> int:
        return self.forward + self.activation_grads + self.weight_grads


def matmul_weights(module: nn.Module, trained_only: bool = False) -> int:
    """Weights of the linear maps in `module` (nn.Linear, GPT-2's Conv1D, including those that
    LoRA and adapters add): each is one multiply-add per token."""
    return sum(
        m.weight.numel()
        for m in module.modules()
        if isinstance(m, nn.Linear | Conv1D) and (m.weight.requires_grad or not trained_only)
    )


def _gpt2_parts(base: nn.Module) -> tuple[list[nn.Module], nn.Module]:
    if not hasattr(base, "transformer") or not hasattr(base.transformer, "h"):
        raise UserError(
            f"the throughput benchmark knows GPT-2-family models only, not {type(base).__name__};"
            " use --model mini, mini-tiny or random:gpt2-medium"
        )
    return list(base.transformer.h), base.transformer.ln_f


def flops_per_token(model: AdaptedLM, seq_len: int) -> Flops:
    """Training FLOPs per token of `model` (an adapted GPT-2) on sequences of `seq_len`."""
    blocks, final_norm = _gpt2_parts(model.base)
    head = model.base.get_output_embeddings()
    width = model.base.config.n_embd
    attention = 4 * width * (seq_len + model.prefix_length)  # one layer's QK^T and AV, forward
    per_block = [matmul_weights(block) for block in blocks]
    head_weights = head.weight.numel()
    forward = 2 * (sum(per_block) + head_weights) + len(blocks) * attention
    trained = [p for p in model.parameters() if p.requires_grad]
    if not trained:
        return Flops(forward, 0, 0)
    where = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
    where |= {id(p): len(blocks) for p in final_norm.parameters()}
    lowest = min(where.get(id(p), 0) for p in trained)  # embeddings, a prefix: the bottom
    reached = len(blocks) - lowest
    activation = 2 * (sum(per_block[lowest:]) + head_weights) + reached * 2 * attention
    weights = sum(matmul_weights(block, trained_only=True) for block in blocks)
    weights += head_weights if head.weight.requires_grad else 0
    return Flops(forward, activation, 2 * weights)


# --- the workload -----------------------------------------------------------------------------


def _words(tokenizer: PreTrainedTokenizerBase, wanted: int = 512) -> list[str]:
    """Words that are one token each with their leading space, so a text of n of them is n
    tokens: sequences of an exact length from any GPT-2-style tokenizer."""
    words = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        single = text[:1] == " " and text[1:].isalpha()
        if single and tokenizer.encode(text, add_special_tokens=False) == [token_id]:
            words.append(text[1:])
            if len(words) == wanted:
                break
    if len(words) < 16:
        raise UserError("the throughput benchmark needs a GPT-2-style (byte-level BPE) tokenizer")
    return words


@dataclass
class Workload:
    """Training pairs of exactly `seq_len` tokens (`source <eos> target <eos>`) and decoding
    prompts of `prompt_tokens`, random words from the model's tokenizer (seeded)."""

    pairs: list[tuple[str, str]]
    prompts: list[str]

    @classmethod
    def make(cls, tokenizer: PreTrainedTokenizerBase, scale: Scale) -> Workload:
        words, rng = _words(tokenizer), random.Random(0)

        def text(n: int) -> str:
            return " ".join(rng.choices(words, k=n))

        source = scale.seq_len // 2 - 1  # each text is framed by an eos
        rows = (scale.warm + scale.steps) * max(scale.train_batches)
        pairs = [(text(source), text(scale.seq_len - source - 2)) for _ in range(rows)]
        prompts = [text(scale.prompt_tokens - 1) for _ in range(max(scale.decode_batches))]
        return cls(pairs, prompts)


def _train_config(scale: Scale, batch: int) -> TrainConfig:
    return TrainConfig(epochs=1, max_steps=scale.warm + scale.steps, batch_size=batch)


def _cell(spec: str, method: str, scale: Scale, batch: int) -> Cell:
    """A cell of `method` on `spec` with its default settings, as a grid would expand it."""
    decode = DecodeConfig(num_beams=BEAMS, max_new_tokens=scale.new_tokens)
    return Cell(
        task="throughput", task_version="1", splits=(), eval_limit=None, method=method,
        label=method, settings={}, model=spec, checkpoint=checkpoint_id(spec), seed=0,
        n_train=None, train=_train_config(scale, batch), decode=decode,
    )  # fmt: skip


def _steps(
    tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]], config: TrainConfig,
    seq_len: int,
) -> list[list[Any]]:  # fmt: skip
    """The plain loop's optimizer steps: the pairs encoded as the harness does, in batches."""
    encoded = encode_pairs(tokenizer, pairs, config)
    if {len(ids) for _, ids, _ in encoded} != {seq_len}:
        raise RuntimeError(f"the workload's sequences are not all {seq_len} tokens long")
    size = config.batch_size
    return [encoded[i : i + size] for i in range(0, len(encoded), size)]


# --- the plain models -------------------------------------------------------------------------


def plain_model(method: str, base: PreTrainedModel, derived: dict[str, Any]) -> tuple[Any, str]:
    """`base` made into `method` by the library a user would reach for, with the method's
    default settings (`derived`: what our method derived at build time, the adapters' width);
    returns (model, what it is)."""
    settings: Any = METHODS.get(method).Settings()
    if method == "finetune":
        return base.requires_grad_(True), "transformers, every parameter trained"
    if method == "finetune-top":
        from bench.methods.finetune_top.model import top_modules

        base.requires_grad_(False)
        for module in top_modules(base, settings.k):
            module.requires_grad_(True)
        return base, f"transformers, all but the top {settings.k} blocks and ln_f frozen"
    if method == "prefix":
        from peft import PrefixTuningConfig, get_peft_model

        config = PrefixTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=settings.length,
            prefix_projection=not settings.flat,
            encoder_hidden_size=settings.mlp_hidden,
        )
        what = f"peft PrefixTuningConfig (length {settings.length}, MLP {settings.mlp_hidden})"
        return get_peft_model(base, config), what
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            task_type="CAUSAL_LM",
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=list(settings.target_modules) if settings.target_modules else None,
            fan_in_fan_out=True,  # GPT-2's Conv1D projections
        )
        return get_peft_model(base, config), f"peft LoraConfig (r {settings.rank}, PEFT's targets)"
    if method == "adapter":
        import logging

        import adapters

        from bench.methods.adapter.model import CONFIGS

        adapters.init(base)
        factor = derived["reduction_factor"]
        base.add_adapter("plain", config=CONFIGS[settings.config](reduction_factor=factor))
        logger = logging.getLogger("adapters.model_mixin")
        level = logger.level
        logger.setLevel(logging.ERROR)  # it warns, wrongly, that no adapter is active
        try:
            base.train_adapter("plain")
        finally:
            logger.setLevel(level)
        return base, f"adapters library, {settings.config} bottleneck {derived['bottleneck']}"
    raise ValueError(f"no plain loop for method {method!r}")


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
        timed = cell.model_copy(update={"train": _train_config(scale, batch)})
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
    """The plain loop's rows: training by `bench.perf.timing.plain_loop`, decoding by `generate`.
    `context`: the harness's device, base dropout and source budget."""
    device, eos = context["device"], tokenizer.eos_token_id
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    side = Side(what, trained, {}, {})
    for batch in scale.train_batches:
        config = _train_config(scale, batch)
        used = workload.pairs[: (scale.warm + scale.steps) * batch]
        steps = _steps(tokenizer, used, config, scale.seq_len)
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
    cell = _cell(spec, method, scale, scale.train_batches[0])
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
    model, what = plain_model(method, load_model(spec, 0).model, derived)
    plain = _plain_side(model.to(device), what, tokenizer, context, scale, workload)
    del model
    free_memory()
    return flops, harness, plain, workload


# --- the benchmark --------------------------------------------------------------------------

MEMORY = {
    "cuda": "torch.cuda.max_memory_allocated over the row (weights included), MiB",
    "cpu": "n/a on CPU: the process's peak RSS is a lifetime high-water mark",
}
FLOPS = (
    "matmul FLOPs per token: forward 2N + 4LdT; backward 2N' + 8L'dT through the blocks from "
    "the lowest trained one up, plus 2x the trained linear weights (full fine-tuning: "
    "6N + 12LdT); see bench/perf/device.py"
)


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
    methods: tuple[str, ...] = METHODS_MEASURED,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """`methods` (each of `METHODS_MEASURED` by default), harness and plain, on `device_name`:
    training tokens/s, MFU and peak memory at each training batch, decoding new tokens/s at
    each decoding batch (`scale`: the GPU's or the CPU's sizes by default; `steps` and
    `new_tokens` shrink it). `log` hears what starts, once bad input is ruled out, and each
    measured row."""
    device = _device(device_name)
    spec = model or DEFAULT_MODEL[device.type]
    if random_architecture(spec) in BART_ARCHITECTURES:
        raise UserError(f"the throughput benchmark measures decoder-only models, not {spec}")
    if unknown := sorted(set(methods) - set(METHODS_MEASURED)):
        raise UserError(f"no plain loop for {unknown}; measured: {', '.join(METHODS_MEASURED)}")
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
