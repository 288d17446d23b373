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


def make_controller_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float,
                              momentum: float = 0.9) -> torch.optim.Optimizer:
    """``adam`` (ENAS's default), ``sgd``, or ``momentum`` (SGD with Nesterov-free momentum
    ``momentum``, TF's ``MomentumOptimizer``, which the seed's CNN command selects)."""
    name = str(name).lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
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
