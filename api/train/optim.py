"""Optimizers, weight-decay groups and the learning-rate schedule of the final trainings.

:class:`RMSpropTF` is TensorFlow's RMSProp, which the paper's ImageNet recipe used: unlike
``torch.optim.RMSprop``, the mean square starts at 1, eps sits inside the square root, the
learning rate enters the momentum buffer, and weight decay is coupled (added to the gradient
before the RMS normalisation), which matters with ``eps=1.0``.

Fidelity notes: docs/fidelity/autoshrink.md.

>>> import torch
>>> w = torch.nn.Parameter(torch.ones(2))
>>> opt = RMSpropTF([w], lr=0.1)
>>> w.sum().backward(); opt.step()
>>> round(w[0].item(), 4)  # 1 - 0.1 * 1 / sqrt(1 + 1)
0.9293
"""
from __future__ import annotations

import math
from typing import Dict, List

import torch
from torch import nn

class RMSpropTF(torch.optim.Optimizer):
    """TensorFlow-style RMSProp (see the module docstring for the exact update)."""

    def __init__(self, params, lr: float = 0.01, decay: float = 0.9, momentum: float = 0.9,
                 eps: float = 1.0, weight_decay: float = 0.0) -> None:
        if lr < 0 or eps <= 0 or not 0.0 <= decay < 1.0 or not 0.0 <= momentum < 1.0:
            raise ValueError(f"bad RMSpropTF settings lr={lr} decay={decay} "
                             f"momentum={momentum} eps={eps}")
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            ms, mom = [], []
            for p in params:
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
                ms.append(state["square_avg"])
                mom.append(state["momentum_buffer"])
            decay = group["decay"]
            torch._foreach_mul_(ms, decay)
            torch._foreach_addcmul_(ms, grads, grads, value=1.0 - decay)
            denom = torch._foreach_add(ms, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_mul_(mom, group["momentum"])
            torch._foreach_addcdiv_(mom, grads, denom, value=group["lr"])
            torch._foreach_sub_(params, mom)
        return loss


def weight_decay_groups(model: nn.Module, weight_decay: float,
                        skip_depthwise: bool = True) -> List[Dict]:
    """Two parameter groups: decayed conv/linear weights, and the rest without decay.

    BN/norm parameters and biases are never decayed; depthwise conv weights are not either
    when ``skip_depthwise`` (the paper's recipe, after MobileNet), as their few weights per
    channel regularise poorly.
    """
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            depthwise = (isinstance(module, nn.Conv2d) and module.groups > 1
                         and module.groups == module.in_channels)
            is_weight = name == "weight" and isinstance(module, (nn.Conv2d, nn.Linear))
            if is_weight and not (skip_depthwise and depthwise):
                decay.append(p)
            else:
                no_decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


class WarmupCosine:
    """LR multiplier per step: linear warm-up to 1, then cosine down to ``min_ratio``."""

    def __init__(self, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> None:
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps))
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosineLR:
    """Per-step scheduler (call ``step()`` after every optimizer step) for :class:`WarmupCosine`.

    Its state is only the step count: a resumed run follows the schedule of its *current*
    flags, so ``--resume --force --epochs 400`` stretches the cosine instead of replaying the old
    one (``LambdaLR`` would restore the old lambda's settings).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int,
                 warmup_steps: int = 0, min_ratio: float = 0.0) -> None:
        self.optimizer = optimizer
        self.schedule = WarmupCosine(total_steps, warmup_steps, min_ratio)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def _apply(self) -> None:
        factor = self.schedule(self.last_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def state_dict(self) -> Dict:
        return {"last_step": self.last_step}

    def load_state_dict(self, state: Dict) -> None:
        self.last_step = int(state["last_step"])
        self._apply()


def scaled_lr(lr_per_ref: float, global_batch: int, ref_batch: int = 128) -> float:
    """The linear scaling rule: ``lr_per_ref`` is the rate for ``ref_batch`` images."""
    return lr_per_ref * global_batch / ref_batch


__all__ = ["RMSpropTF", "weight_decay_groups", "WarmupCosine", "WarmupCosineLR", "scaled_lr"]
