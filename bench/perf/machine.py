"""What every benchmark records about where it ran, and the clock they all read.

One clock for every measurement, so that two numbers set side by side were taken the same way:
wall and CPU time together, and on a GPU only once the device has finished its queue.
"""

from __future__ import annotations

import os
import platform
import time

import torch


def machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def now(device: torch.device | None = None) -> tuple[float, float]:
    """(wall clock, this process's CPU time); on a GPU once the device has done all it was
    given: the host runs ahead of a GPU, so a clock read alone times what was queued."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter(), time.process_time()
