"""The arithmetic precision a cell trains and decodes in (`TrainConfig.precision`), resolved for
a device.

`auto` is bf16 on a CUDA GPU that supports it (tensor cores at several times the fp32 rate, the
same exponent range as fp32 so no loss scaling) and fp32 everywhere else, so a CPU run computes
exactly what it computed before precision was a setting. bf16 and fp16 run the forward pass and
the loss under `torch.autocast` (weights, gradients and optimizer state stay fp32); fp16's narrow
range needs a gradient scaler, which `grad_scaler` gives only for fp16. Beam search runs under
the same autocast (`bench.engine.generation.generate`), its log-probabilities taken in fp32.
"""

from __future__ import annotations

import contextlib

import torch

from bench.errors import UserError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """`precision` as it will run on `device`: fp32, bf16 or fp16 (never auto). `auto` takes
    bf16 only where the GPU computes it natively: torch also reports bf16 as supported where it
    is emulated (a V100, a T4), slower than fp32 there."""
    cuda = device.type == "cuda"
    if precision == "auto":
        native = cuda and torch.cuda.is_bf16_supported(including_emulation=False)
        return "bf16" if native else "fp32"
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise UserError(
            f"train.precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 "
            "support; use fp16 or auto"
        )
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a forward pass and its loss run in: autocast for bf16/fp16, nothing for
    fp32 (so fp32 is bit for bit the plain computation)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler for fp16; for the other precisions a disabled one, whose scale, unscale,
    step and update pass straight through to the plain backward and optimizer step."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
