"""Exponential moving average of model weights (the paper's recipe keeps one at 0.999).

As TensorFlow's ``ExponentialMovingAverage(decay, num_updates=step)``, the effective decay is
``min(decay, (1 + step) / (10 + step))``: early on the average follows the model closely
instead of staying anchored to the random initialisation. Float parameters and buffers (BN
running statistics included) are averaged; integer buffers are copied.
"""
from __future__ import annotations

import copy
from typing import Dict

import torch
from torch import nn


class ModelEma:
    """A frozen copy of ``model`` whose weights trail the model's."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_float, model_float = [], []
        for ema_v, v in zip(self.module.state_dict().values(), model.state_dict().values()):
            if ema_v.dtype.is_floating_point:
                ema_float.append(ema_v)
                model_float.append(v.detach())
            else:
                ema_v.copy_(v)
        torch._foreach_lerp_(ema_float, model_float, 1.0 - decay)

    def state_dict(self) -> Dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: Dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
