"""REINFORCE bookkeeping every ENAS controller shares (RNN, CNN macro, CNN micro).

ENAS trains its controller with the policy gradient ``-(R - b) * log p(arch)``, where the
reward ``R`` may carry an entropy bonus (``entropy_coeff * H``) and ``b`` is an exponential
moving average of past rewards. The pieces live here once: the optimizer named by
``--controller_optim``, the controller's learning rate (constant, or cosine between
``--controller_lr_max`` and ``--controller_lr_min`` as the seed's CNN command asks), and the
baseline with a checkpointable state.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Optional

import torch

from api.errors import UserError

CONTROLLER_OPTIMS = ("adam", "sgd", "momentum")


def check_controller_optim(name: str) -> None:
    """The ``--controller_optim`` flag's check (one ``error:`` line before any work)."""
    if str(name).lower() not in CONTROLLER_OPTIMS:
        raise UserError(f"--controller_optim {name!r} is not one of {', '.join(CONTROLLER_OPTIMS)}")


class TFAdam(torch.optim.Optimizer):
    """TensorFlow's ``AdamOptimizer`` update, which ENAS's CNN controllers use with
    ``beta1=0`` and ``epsilon=1e-3``: ``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)`` and
    ``w -= lr_t * m / (sqrt(v) + eps)``. TF adds ``eps`` to the uncorrected ``sqrt(v)``;
    ``torch.optim.Adam`` adds it after the bias correction, a different step for a large
    ``eps`` (1e-3 here) in the first thousand steps."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 beta1: float = 0.0, beta2: float = 0.999, eps: float = 1e-3) -> None:
        super().__init__(params, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2, eps = group["beta1"], group["beta2"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v, g = state["m"], state["v"], p.grad
                m.mul_(b1).add_(g, alpha=1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                lr_t = group["lr"] * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
                p.addcdiv_(m, v.sqrt().add_(eps), value=-lr_t)
        return loss


def make_controller_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float,
                              momentum: float = 0.9, tf_adam: bool = False
                              ) -> torch.optim.Optimizer:
    """``adam`` (ENAS's default: :class:`TFAdam` with ``tf_adam``, TF's CNN controllers;
    else ``torch.optim.Adam``'s defaults, carpedm20's RNN controller), ``sgd``, or
    ``momentum``: TF ``get_train_ops``'s, Nesterov momentum ``momentum`` (the seed's CNN
    command selects it; carpedm20's own code has no such optimizer)."""
    name = str(name).lower()
    if name == "adam":
        return TFAdam(params, lr=lr) if tf_adam else torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)
    raise UserError(f"--controller_optim {name!r} is not one of {', '.join(CONTROLLER_OPTIMS)}")


def controller_lr(step: int, total_steps: int, lr: float, cosine: bool = False,
                  lr_max: Optional[float] = None, lr_min: float = 0.0) -> float:
    """The controller's learning rate at ``step`` of ``total_steps``: ``lr`` constant, or
    with ``cosine`` one half cosine from ``lr_max`` (default ``lr``) down to ``lr_min``."""
    if not cosine:
        return lr
    top = lr if lr_max is None else lr_max
    frac = min(max(step, 0), max(total_steps, 1)) / max(total_steps, 1)
    return lr_min + 0.5 * (top - lr_min) * (1.0 + math.cos(math.pi * frac))


class EMABaseline:
    """``b <- decay * b + (1 - decay) * R``; the first reward initialises it (so the first
    advantage is 0 rather than the whole reward, as the official code's zero-initialised
    baseline would give in a run's first steps)."""

    def __init__(self, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise UserError(f"baseline decay {decay} must be in [0, 1)")
        self.decay, self.value = float(decay), None

    def advantage(self, reward: float) -> float:
        """Update with ``reward`` and return ``reward - b`` (b taken before the update, as
        ENAS does)."""
        reward = float(reward)
        if self.value is None:
            self.value = reward
        adv = reward - self.value
        self.value = self.decay * self.value + (1.0 - self.decay) * reward
        return adv

    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay, "value": self.value}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.decay, self.value = float(state["decay"]), state["value"]


def policy_loss(log_prob: torch.Tensor, advantage: float) -> torch.Tensor:
    """REINFORCE loss of one sampled architecture: ``-(R - b) * sum(log p)``."""
    return -float(advantage) * log_prob.sum()
