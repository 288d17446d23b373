"""DARTS's step (Liu et al., ICLR 2019) on the one weight-sharing trainer: V1 (first order)
and V2 (``unrolled``: second order), on the supernet's ``softmax`` mode.

Per step, as quark0/darts ``cnn/train_search.py``: the architecture step
(:class:`searching.darts.architect.Architect` on the architecture batch, Adam on the alphas),
then the weight step (cross-entropy on the training batch, gradient norm clipped to 5, SGD).
The recorded ``val_loss``/``val_acc`` are the architecture forward's: at w for V1, at w' for V2.

Fidelity notes (step order on NAS-Bench-201, settings): docs/fidelity/darts.md.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from searching.darts.architect import Architect
from searching.oneshot.trainer import OneShotConfig, OneShotMethod


def _loss_and_logits(model: nn.Module, batch: Tuple[torch.Tensor, torch.Tensor]):
    x, y = batch
    logits = model(x, mode="softmax")
    return F.cross_entropy(logits, y), logits


class DARTS(OneShotMethod):
    """DARTS-V1 (``unrolled=False``) or DARTS-V2 (``unrolled=True``)."""

    def __init__(self, unrolled: bool = False, arch_lr: float = 3e-4,
                 arch_weight_decay: float = 1e-3) -> None:
        self.unrolled = bool(unrolled)
        self.name = "darts-v2" if self.unrolled else "darts-v1"
        self.arch_lr, self.arch_weight_decay = float(arch_lr), float(arch_weight_decay)
        self.architect: Architect = None  # type: ignore[assignment]

    def settings(self) -> Dict[str, Any]:
        return {"unrolled": self.unrolled, "arch_lr": self.arch_lr,
                "arch_weight_decay": self.arch_weight_decay}

    def bind(self, net: nn.Module, w_optimizer: torch.optim.Optimizer,
             config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        self.architect = Architect(net, _loss_and_logits, lr=self.arch_lr, betas=(0.5, 0.999),
                                   weight_decay=self.arch_weight_decay)
        self.weights = [p for p in net.weight_parameters() if p.requires_grad]

    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        (xw, yw), (_, ya) = train_batch, val_batch
        # 1. architecture (xi = the weights' current lr, set by the trainer for this epoch)
        lr = self.w_optimizer.param_groups[0]["lr"]
        val_loss = self.architect.step(train_batch, val_batch, lr, self.w_optimizer,
                                       unrolled=self.unrolled)
        with torch.no_grad():
            val_acc = (self.architect.last_aux.argmax(1) == ya).float().mean()
        self.architect.last_aux = None
        # 2. weights
        self.w_optimizer.zero_grad()
        logits = net(xw, mode="softmax")
        loss = F.cross_entropy(logits, yw)
        loss.backward(inputs=self.weights)  # the alphas' gradient is the architect's
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.weights, self.config.grad_clip)
        self.w_optimizer.step()
        with torch.no_grad():
            return {"train_loss": loss.detach(),
                    "train_acc": (logits.argmax(1) == yw).float().mean(),
                    "val_loss": val_loss, "val_acc": val_acc}

    def state_dict(self) -> Dict[str, Any]:
        return {"architect": self.architect.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.architect.load_state_dict(state["architect"])
