"""What a run ran on, in words, for summaries and cost tables ("device" fields).

Torch is imported only to name a CUDA device, so the tabular searches, which never load torch,
can use it too."""
from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def device_name(device=None) -> str:
    """The GPU's name for a CUDA device, else the CPU's (``None``: the CPU)."""
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_name()


__all__ = ["cpu_name", "device_name"]
