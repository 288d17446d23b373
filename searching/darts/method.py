"""DARTS's step (Liu et al., ICLR 2019) on the one weight-sharing trainer: V1 (first order)
and V2 (``unrolled``: second order), on the supernet's ``softmax`` mode.

Per step, as the official ``cnn/train_search.py`` (quark0/darts) ``train``:

1. the architecture step: :class:`searching.darts.architect.Architect` on the architecture
   batch (the trainer's persistent validation iterator), V2 with the training batch for the
   virtual step, ξ = the weights' current learning rate and the weights' SGD optimizer (its
   momentum buffers, momentum and weight decay); Adam on the alphas (lr 3e-4, betas
   (0.5, 0.999), wd 1e-3);
2. the weight step: a softmax forward on the training batch, cross-entropy, backward into the
   weights, their gradient norm clipped to 5 (DARTS clips ``model.parameters()``, which in its
   search ``Network`` holds only the weights: its alphas are plain tensors), the SGD step.

The recorded ``val_loss``/``val_acc`` are the architecture forward's: at w for V1, at the
virtual weights w' for V2 (AutoDL's DARTS-V2 records the same ``unrolled_loss``).

Order of the two steps on NAS-Bench-201: AutoDL-Projects' ``exps/algos/DARTS-V2.py`` takes the
architecture step first, as DARTS; its ``DARTS-V1.py`` takes the weight step first (as its
GDAS). Both variants here keep DARTS's order (architecture first), so V1 and V2 differ only
in the architecture gradient.
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
