"""The FLOP model MFU rests on: training FLOPs per token of an adapted GPT-2
(`flops_per_token`), and the dense peaks of the GPUs it is divided by (`peak_of`); for `bench
plan`, the same count per example of GPT-2 or BART (`example_flops`) and of the harness's beam
search (`decode_flops`), both checked against `torch.utils.flop_counter`.

FLOPs per token count matrix multiplies only (biases, norms, softmax, activations and the
embedding lookup left out, as Kaplan et al. and PaLM do), from the harness's built model, so
LoRA's and the adapters' own layers count:
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
"""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass

from torch import nn
from transformers.pytorch_utils import Conv1D

from bench.engine.adapted import AdaptedLM
from bench.errors import UserError

FLOPS = (
    "matmul FLOPs per token: forward 2N + 4LdT; backward 2N' + 8L'dT through the blocks from "
    "the lowest trained one up, plus 2x the trained linear weights (full fine-tuning: "
    "6N + 12LdT); see bench/perf/flops.py"
)

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
    _gpt2_parts(model.base)  # the throughput benchmark's models: GPT-2's, or a clear error
    whole = example_flops(model, seq_len, 0)
    return Flops(*(part // seq_len for part in astuple(whole)))


@dataclass(frozen=True)
class _Stage:
    """A block and what it sees in one example: `tokens` rows, each attending `keys` keys."""

    block: nn.Module
    tokens: int
    keys: int


def _stages(
    model: AdaptedLM, source: int, target: int
) -> tuple[list[_Stage], nn.Module | None, int]:
    """(the blocks in the order data flows, the final norm, the rows the LM head scores) of one
    example of `source` + `target` tokens: a decoder-only model reads both as one sequence; an
    encoder-decoder's encoder reads the source and its decoder the target, attending to itself
    and to the source. A prefix adds its keys to the attentions it reaches; a prompt
    (`prefix_rows`) also adds its rows to what the blocks run on (and, decoder-only, the head)."""
    base, self_prefix, cross_prefix = model.base, model.prefix_length, model.cross_prefix_length
    if base.config.is_encoder_decoder:
        encoder, decoder = base.get_encoder(), base.get_decoder()
        rows = source + cross_prefix * model.prefix_rows
        stages = [_Stage(b, rows, source + cross_prefix) for b in encoder.layers]
        keys = target + self_prefix + source + cross_prefix
        stages += [_Stage(b, target, keys) for b in decoder.layers]
        return stages, getattr(decoder, "layer_norm", None), target
    blocks, final_norm = _gpt2_parts(base)
    length = source + target
    rows = length + self_prefix * model.prefix_rows
    return [_Stage(b, rows, length + self_prefix) for b in blocks], final_norm, rows


def example_flops(model: AdaptedLM, source: int, target: int) -> Flops:
    """Training FLOPs of one example of `source` and `target` tokens (GPT-2 or BART), counted as
    the module docstring says; for an encoder-decoder the decoder's cross-attention key and value
    maps are counted per target row (a slight over-count: they run once per source row)."""
    stages, final_norm, head_rows = _stages(model, source, target)
    head = model.base.get_output_embeddings()
    width = model.base.config.hidden_size
    head_weights = head.weight.numel()
    per_stage = [s.tokens * (2 * matmul_weights(s.block) + 4 * width * s.keys) for s in stages]
    forward = sum(per_stage) + 2 * head_weights * head_rows
    trained = [p for p in model.parameters() if p.requires_grad]
    if not trained:
        return Flops(forward, 0, 0)
    where = {id(p): i for i, s in enumerate(stages) for p in s.block.parameters()}
    if final_norm is not None:
        where |= {id(p): len(stages) for p in final_norm.parameters()}
    lowest = min(where.get(id(p), 0) for p in trained)  # embeddings, a prefix: the bottom
    activation = 2 * head_weights * head_rows + sum(
        s.tokens * (2 * matmul_weights(s.block) + 8 * width * s.keys) for s in stages[lowest:]
    )
    weights = sum(2 * s.tokens * matmul_weights(s.block, trained_only=True) for s in stages)
    weights += 2 * head_weights * head_rows if head.weight.requires_grad else 0
    return Flops(forward, activation, weights)


def decode_flops(model: AdaptedLM, prompt: int, new_tokens: int, beams: int) -> int:
    """Forward FLOPs of the harness's beam search (`bench.engine.generation.beam_search`) on
    one input, checked against `torch.utils.flop_counter`: the prompt read once (decoder-only:
    every row through the LM head) or encoded once with the decoder's start token, the beams
    then sharing its cache; then `new_tokens - 1` steps of one row per beam (the last token
    chosen needs no step), each scored by the LM head and attending to every key so far."""
    width = model.base.config.hidden_size
    head = 2 * model.base.get_output_embeddings().weight.numel()
    if model.base.config.is_encoder_decoder:
        reads = example_flops(model, prompt, 1).forward  # the source, and the start token
        blocks = list(model.base.get_decoder().layers)
        keys = 1 + model.prefix_length + prompt + model.cross_prefix_length
    else:
        reads = example_flops(model, prompt, 0).forward
        blocks = _gpt2_parts(model.base)[0]
        keys = prompt + model.prefix_length
    weights = sum(matmul_weights(block) for block in blocks)
    steps = sum(
        2 * weights + head + len(blocks) * 4 * width * (keys + t) for t in range(1, new_tokens)
    )
    return reads + beams * steps
