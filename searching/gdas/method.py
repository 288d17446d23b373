"""GDAS's step on the one weight-sharing trainer (AutoDL-Projects' ``exps/NAS-Bench-201-algos/
GDAS.py`` and ``exps/algos/GDAS.py``, ``search_func``).

Per step, on the supernet's ``gumbel`` mode (:func:`api.spaces.supernet.gumbel_hard`): the
weight step (cross-entropy, gradient norm of ``network.parameters()`` clipped to 5, SGD), then
the architecture step on a fresh sample (cross-entropy, Adam on the alphas). The alphas'
gradient is part of the checkpointed state, so a resumed search clips identically. tau decays
linearly per epoch from ``tau_max`` to ``tau_min``. The cell is derived by AutoDL's rules:
per-edge argmax on NAS-Bench-201, ``NASNetworkGDAS.genotype``'s top-2 (op, input) pairs per
node on the DARTS space.

Fidelity notes (clipping with the alphas, tau schedule, derivation): docs/fidelity/gdas.md.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from searching.oneshot.trainer import OneShotConfig, OneShotMethod


def tau_at(epoch: int, epochs: int, tau_max: float = 10.0, tau_min: float = 0.1) -> float:
    """GDAS's temperature of ``epoch`` (0-based) of ``epochs``."""
    if epochs <= 1:
        return float(tau_max)
    return tau_max - (tau_max - tau_min) * epoch / (epochs - 1)


class GDAS(OneShotMethod):
    name = "gdas"

    def __init__(self, tau_max: float = 10.0, tau_min: float = 0.1, arch_lr: float = 3e-4,
                 arch_weight_decay: float = 1e-3, seed: int = 0) -> None:
        self.tau_max, self.tau_min = float(tau_max), float(tau_min)
        self.arch_lr, self.arch_weight_decay, self.seed = arch_lr, arch_weight_decay, seed
        self.tau: Optional[float] = None
        self.generator: Optional[torch.Generator] = None

    def settings(self) -> Dict[str, Any]:
        return {"tau_max": self.tau_max, "tau_min": self.tau_min, "arch_lr": self.arch_lr,
                "arch_weight_decay": self.arch_weight_decay}

    def bind(self, net: nn.Module, w_optimizer: torch.optim.Optimizer,
             config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        self.a_optimizer = torch.optim.Adam(net.arch_parameters(), lr=self.arch_lr,
                                            betas=(0.5, 0.999),
                                            weight_decay=self.arch_weight_decay)
        device = next(net.parameters()).device
        self.generator = torch.Generator(device=device).manual_seed(self.seed + 4)

    def epoch_start(self, epoch: int) -> Dict[str, Any]:
        self.tau = tau_at(epoch, self.config.epochs, self.tau_max, self.tau_min)
        return {"tau": self.tau}

    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        (xw, yw), (xa, ya) = train_batch, val_batch
        # 1. weights
        self.w_optimizer.zero_grad()
        logits = net(xw, mode="gumbel", tau=self.tau, generator=self.generator)
        loss = F.cross_entropy(logits, yw)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), self.config.grad_clip)
        self.w_optimizer.step()
        # 2. architecture
        self.a_optimizer.zero_grad()
        logits_a = net(xa, mode="gumbel", tau=self.tau, generator=self.generator)
        loss_a = F.cross_entropy(logits_a, ya)
        loss_a.backward()
        self.a_optimizer.step()
        with torch.no_grad():
            return {"train_loss": loss.detach(),
                    "train_acc": (logits.argmax(1) == yw).float().mean(),
                    "val_loss": loss_a.detach(),
                    "val_acc": (logits_a.argmax(1) == ya).float().mean()}

    def derive(self, net: nn.Module):
        """AutoDL's GDAS genotype: the DARTS-space supernet's ``rule="gdas"``; NAS-Bench-201's
        argmax per edge is the supernet's own rule."""
        if self.config.space == "darts":
            return net.derive(rule="gdas")
        return net.derive()

    def state_dict(self) -> Dict[str, Any]:
        return {"a_optimizer": self.a_optimizer.state_dict(),
                "generator": self.generator.get_state().cpu(),
                "alpha_grads": [None if p.grad is None else p.grad.detach().cpu()
                                for p in self.net.arch_parameters()],
                "tau": self.tau}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self.generator.set_state(state["generator"].to(self.generator.get_state().device))
        for p, g in zip(self.net.arch_parameters(), state["alpha_grads"]):
            p.grad = None if g is None else g.to(p.device).clone()
        self.tau = state["tau"]
