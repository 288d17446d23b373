"""Drop-path for cell networks (DARTS-style), added with forward hooks.

During training every node op output of every cell is zeroed per sample with probability
``p`` and rescaled by ``1 / (1 - p)``; ``p`` ramps linearly from 0 to ``prob`` over the
epochs, as in DARTS' CIFAR recipe. Hooks keep :mod:`api.spaces.autoshrink_cnn.network` free of training concerns.
"""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from api.spaces.autoshrink_cnn.network import Cell


class DropPath:
    def __init__(self, model: nn.Module, prob: float, epochs: int) -> None:
        self.prob = prob
        self.epochs = max(1, epochs)
        self.p = 0.0
        self.handles: List = []
        for module in model.modules():
            if isinstance(module, Cell):
                for op in module.ops.values():
                    self.handles.append(op.register_forward_hook(self._hook))

    def set_epoch(self, epoch: int) -> None:
        self.p = self.prob * epoch / self.epochs

    def __call__(self, epoch: int) -> None:  # usable as a Trainer epoch hook
        self.set_epoch(epoch)

    def _hook(self, module: nn.Module, _inp, out: torch.Tensor) -> torch.Tensor:
        if not module.training or self.p <= 0:
            return out
        keep = 1.0 - self.p
        mask = torch.empty(out.shape[0], 1, 1, 1, device=out.device, dtype=out.dtype)
        return out * mask.bernoulli_(keep).div_(keep)
