"""DARTS's RNN step (official ``rnn/train_search.py`` + ``rnn/architect.py``, quark0/darts) on
the one weight-sharing trainer's text data (:mod:`searching.oneshot.text`).

Per step, on a training window (train split) and an architecture window (valid split): the
weights' lr is scaled by seq_len / bptt; the architecture step
(:class:`searching.darts.architect.Architect`, plain NLL, the RNN architect's clipping, Adam
on alpha; V2's virtual step as the official code's, which leaves the tied embedding at w and
scales the implicit term by ξ·max_norm/‖g‖, or with ``exact_virtual_step`` every weight
stepped and the scale ξ·min(1, max_norm/‖g‖)); then the weight step (NLL plus TAR on the raw cell outputs, norm clipped to 0.25,
SGD). Hidden states are detached every step, zero at each epoch start and checkpointed.
``train_loss`` is the weight step's raw NLL, ``val_loss`` the architecture step's.

Fidelity notes: docs/fidelity/darts.md.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from api.lm.softmax_loss import linear_cross_entropy
from searching.darts.architect import Architect
from searching.oneshot.trainer import OneShotConfig, OneShotMethod


def _lm_loss(model: nn.Module, batch):
    x, y, hidden = batch
    return model.loss(x, y, hidden)


class DARTSRNN(OneShotMethod):
    """DARTS-V1 (``unrolled=False``) or DARTS-V2 (``unrolled=True``) on an RNN supernet."""

    def __init__(self, unrolled: bool = False, arch_lr: float = 3e-3,
                 arch_weight_decay: float = 1e-3, bptt: int = 35, beta: float = 1e-3,
                 exact_virtual_step: bool = False) -> None:
        self.unrolled = bool(unrolled)
        self.exact_virtual_step = bool(exact_virtual_step)
        self.name = "darts-v2" if self.unrolled else "darts-v1"
        self.arch_lr, self.arch_weight_decay = float(arch_lr), float(arch_weight_decay)
        self.bptt, self.beta = int(bptt), float(beta)
        self.architect: Architect = None  # type: ignore[assignment]
        self.hidden: Optional[torch.Tensor] = None
        self.hidden_valid: Optional[torch.Tensor] = None

    def settings(self) -> Dict[str, Any]:
        out = {"unrolled": self.unrolled, "arch_lr": self.arch_lr,
               "arch_weight_decay": self.arch_weight_decay, "bptt": self.bptt,
               "beta": self.beta}
        if self.unrolled:  # V1 has no virtual step
            out["virtual_step"] = "exact" if self.exact_virtual_step else "official"
        return out

    def bind(self, net: nn.Module, w_optimizer: torch.optim.Optimizer,
             config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        exact = self.exact_virtual_step
        self.architect = Architect(net, _lm_loss, lr=self.arch_lr, betas=(0.9, 0.999),
                                   weight_decay=self.arch_weight_decay,
                                   grad_clip=config.grad_clip if config.grad_clip > 0 else None,
                                   cap_clip_factor=exact,
                                   unstepped=() if exact else (net.decoder_weight,))
        self.weights = [p for p in net.weight_parameters() if p.requires_grad]

    def epoch_start(self, epoch: int) -> Dict[str, Any]:
        self.hidden = self.hidden_valid = None  # DARTS: zero at every epoch
        return {}

    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        (xw, yw), (xa, ya) = train_batch, val_batch
        if self.hidden is None:
            self.hidden = net.init_hidden(xw.size(1))
        if self.hidden_valid is None:
            self.hidden_valid = net.init_hidden(xa.size(1))
        groups = self.w_optimizer.param_groups
        base = [g["lr"] for g in groups]
        lr = base[0] * xw.size(0) / self.bptt
        for g, b in zip(groups, base):
            g["lr"] = b * xw.size(0) / self.bptt
        try:
            hidden = self.hidden.detach()
            val_loss = self.architect.step((xw, yw, hidden), (xa, ya, self.hidden_valid.detach()),
                                           lr, self.w_optimizer, unrolled=self.unrolled)
            self.hidden_valid = self.architect.last_aux.detach()
            self.architect.last_aux = None
            self.w_optimizer.zero_grad()
            out, raw, new_hidden = net.forward_raw(xw, hidden)
            nll = linear_cross_entropy(out.reshape(-1, net.nhid), net.decoder_weight,
                                       net.decoder_bias, yw.reshape(-1))
            loss = nll
            if self.beta and raw.size(0) > 1:
                loss = loss + self.beta * (raw[1:] - raw[:-1]).pow(2).mean()
            loss.backward(inputs=self.weights)
            if self.config.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.weights, self.config.grad_clip)
            self.w_optimizer.step()
            self.hidden = new_hidden.detach()
        finally:
            for g, b in zip(groups, base):
                g["lr"] = b
        return {"train_loss": nll.detach(), "val_loss": val_loss}

    def state_dict(self) -> Dict[str, Any]:
        return {"architect": self.architect.state_dict(), "hidden": self.hidden,
                "hidden_valid": self.hidden_valid}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.architect.load_state_dict(state["architect"])
        self.hidden, self.hidden_valid = state["hidden"], state["hidden_valid"]
