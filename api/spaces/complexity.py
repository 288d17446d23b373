"""MACs and parameter counts, in the paper's convention.

MACs: conv ``H_out * W_out * k * k * Cin * Cout / groups``, linear ``in * out``; BN, pooling,
concatenation and additions are not counted. Parameters exclude BN by default (the paper's
convention); ``include_bn=True`` gives the full count. :func:`flop_counter_macs` is an
independent count through ``torch.utils.flop_counter`` (FLOPs / 2) used to cross-check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import nn

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass(frozen=True)
class Complexity:
    macs: int
    params: int
    params_with_bn: int

    def summary(self) -> str:
        return (f"params {self.params / 1e6:.3f}M ({self.params_with_bn / 1e6:.3f}M with BN), "
                f"MACs {self.macs / 1e6:.1f}M")


def count_params(model: nn.Module, include_bn: bool = False) -> int:
    total = 0
    for module in model.modules():
        if not include_bn and isinstance(module, _BN_TYPES):
            continue
        total += sum(p.numel() for p in module.parameters(recurse=False))
    return total


def count_macs(model: nn.Module, input_size: Tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on a single input of ``input_size`` (C, H, W)."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inp, out) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += (out.shape[2] * out.shape[3] * kh * kw * module.in_channels
                  * module.out_channels // module.groups)

    def linear_hook(module: nn.Linear, _inp, _out) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)


def flop_counter_macs(model: nn.Module, input_size: Tuple[int, ...]) -> int:
    """MACs as ``torch.utils.flop_counter.FlopCounterMode`` sees them (total FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2)


def complexity(model: nn.Module, input_size: Tuple[int, ...]) -> Complexity:
    return Complexity(count_macs(model, input_size), count_params(model),
                      count_params(model, include_bn=True))
