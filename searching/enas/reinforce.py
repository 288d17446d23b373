"""REINFORCE bookkeeping every ENAS controller shares (RNN, CNN macro, CNN micro).

ENAS trains its controller with the policy gradient ``-(R - b) * log p(arch)``, where the
reward ``R`` may carry an entropy bonus (``entropy_coeff * H``) and ``b`` is an exponential
moving average of past rewards. The pieces live here once: the optimizer named by
``--controller_optim``, the controller's learning rate (constant, or cosine between
``--controller_lr_max`` and ``--controller_lr_min`` as the seed's CNN command asks), and the
baselines with a checkpointable state (ENAS's, and AutoDL-Projects' NAS-Bench-201 form).
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


class PhaseBaseline:
    """AutoDL-Projects' NAS-Bench-201 ENAS baseline (``exps/NAS-Bench-201-algos/ENAS.py``,
    ``train_controller``). For a sample with accuracy ``acc`` and reward ``R``:
    ``b = acc`` while no baseline exists yet, else ``b = B - (1 - decay) * (B - R)``, and the
    loss is ``-log p * (R - b)``: the average already holds this sample's reward.

    ``scope="phase"`` (AutoDL's): ``B`` is the baseline the previous controller phase ended
    with, the same for every sample of a phase (the average is not carried from sample to
    sample), and the phase's last ``b`` becomes the next phase's ``B``; in the first phase
    ``b = acc`` throughout, so ``R - b`` is the entropy bonus alone. ``scope="sample"``: ``B``
    is the previous sample's ``b``, the moving average ENAS means.

    ``b`` is returned as AutoDL computes it, from the reward tensor, so with a differentiable
    entropy bonus in ``R`` the advantage carries gradient (:meth:`begin_phase`/``value`` hold
    plain floats)."""

    SCOPES = ("phase", "sample")

    def __init__(self, decay: float, scope: str = "phase") -> None:
        if not 0.0 <= decay < 1.0:
            raise UserError(f"baseline decay {decay} must be in [0, 1)")
        if scope not in self.SCOPES:
            raise UserError(f"baseline scope {scope!r} is not one of {', '.join(self.SCOPES)}")
        self.decay, self.scope = float(decay), scope
        self.value: Optional[float] = None   # the baseline carried between phases / samples
        self._phase_start: Optional[float] = None

    def begin_phase(self) -> None:
        self._phase_start = self.value

    def __call__(self, acc, reward):
        """The baseline ``b`` of one sample (a tensor when ``reward`` is one)."""
        start = self._phase_start if self.scope == "phase" else self.value
        b = acc if start is None else start - (1.0 - self.decay) * (start - reward)
        self.value = float(b.detach()) if torch.is_tensor(b) else float(b)
        return b

    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay, "scope": self.scope, "value": self.value,
                "phase_start": self._phase_start}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.decay, self.scope = float(state["decay"]), str(state["scope"])
        self.value, self._phase_start = state["value"], state["phase_start"]
