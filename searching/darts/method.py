"""DARTS's step (Liu et al., ICLR 2019) on the one weight-sharing trainer: V1 (first order)
and V2 (``unrolled``: second order), on the supernet's ``softmax`` mode.

Per step, as quark0/darts ``cnn/train_search.py``: the architecture step
(:class:`searching.darts.architect.Architect` on the architecture batch, Adam on the alphas),
then the weight step (cross-entropy on the training batch, gradient norm clipped to 5, SGD);
AutoDL's NAS-Bench-201 DARTS-V1 takes the two the other way round (``weights_first``).
The clip's norm spans what the official code of the space clips: quark0's ``model.parameters()``
(the weights: its alphas are not module parameters) on the darts space, AutoDL's
``network.parameters()`` (weights and alphas, the alphas' gradient being the architecture
step's plus the weight loss's) on NAS-Bench-201. The recorded ``val_loss``/``val_acc`` are the
architecture forward's: at w for V1, at w' for V2. ``derive_at="epoch_start"`` reports each
epoch's genotype as quark0 logs it, before the epoch's training.

Fidelity notes (step order on NAS-Bench-201, clipping, settings): docs/fidelity/darts.md.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from searching.darts.architect import Architect
from searching.oneshot.trainer import OneShotConfig, OneShotMethod

#: When the reported genotype is derived: before each epoch's training (quark0's log line) or
#: after it (AutoDL's).
DERIVE_AT = ("epoch_start", "epoch_end")
#: Which step comes first in a search step.
STEP_ORDERS = ("arch_first", "weights_first")


def _loss_and_logits(model: nn.Module, batch: Tuple[torch.Tensor, torch.Tensor]):
    x, y = batch
    logits = model(x, mode="softmax")
    return F.cross_entropy(logits, y), logits


class NesterovUnroll(Architect):
    """V2 whose virtual step is Nesterov SGD's own next step,
    w' = w − ξ[(1+μ)(∇w L_train + λw) + μ²·b], instead of DARTS's heavy-ball formula. It is
    DARTS's formula at ξ(1+μ) with μ²·b/(1+μ) for the momentum term; the caller passes
    ξ(1+μ), which is also the chain rule's scale of the implicit term."""

    def __init__(self, *args: Any, momentum: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.momentum = float(momentum)

    def _sgd_terms(self, weights, w_optimizer):  # type: ignore[override]
        shrink = self.momentum / (1.0 + self.momentum)
        return [(None if mb is None else mb * shrink, wd)
                for mb, wd in Architect._sgd_terms(weights, w_optimizer)]


class DARTS(OneShotMethod):
    """DARTS-V1 (``unrolled=False``) or DARTS-V2 (``unrolled=True``).

    ``clip_alphas``: the weight step's clip norm includes the alphas' gradient (None: as the
    space's official code, i.e. on NAS-Bench-201 only). ``derive_at``: see :data:`DERIVE_AT`.
    ``unroll_nesterov``: V2's virtual step is the Nesterov optimizer's own next step
    (:class:`NesterovUnroll`; the official codes use the heavy-ball formula). ``step_order``:
    see :data:`STEP_ORDERS`; with ``weights_first`` and ``clip_alphas`` the weight step's clip
    sees the previous architecture step's alpha gradient (kept in the checkpoint), as AutoDL's
    DARTS-V1."""

    def __init__(self, unrolled: bool = False, arch_lr: float = 3e-4,
                 arch_weight_decay: float = 1e-3, derive_at: str = "epoch_end",
                 clip_alphas: Optional[bool] = None, unroll_nesterov: bool = False,
                 step_order: str = "arch_first") -> None:
        if derive_at not in DERIVE_AT:
            raise ValueError(f"derive_at must be one of {', '.join(DERIVE_AT)}, got "
                             f"{derive_at!r}")
        if step_order not in STEP_ORDERS:
            raise ValueError(f"step_order must be one of {', '.join(STEP_ORDERS)}, got "
                             f"{step_order!r}")
        self.step_order = step_order
        self.unrolled = bool(unrolled)
        self.name = "darts-v2" if self.unrolled else "darts-v1"
        self.arch_lr, self.arch_weight_decay = float(arch_lr), float(arch_weight_decay)
        self.derive_at, self.unroll_nesterov = derive_at, bool(unroll_nesterov)
        self._clip_alphas = clip_alphas
        self.architect: Architect = None  # type: ignore[assignment]
        self._start_arch: Any = None  # the architecture derived at the current epoch's start

    def settings(self) -> Dict[str, Any]:
        out = {"unrolled": self.unrolled, "arch_lr": self.arch_lr,
               "arch_weight_decay": self.arch_weight_decay, "derive_at": self.derive_at,
               "clip_alphas": self._clip_alphas}  # None: the space's official scope
        if self.unroll_nesterov:
            out["unroll_nesterov"] = True
        if self.step_order != "arch_first":
            out["step_order"] = self.step_order
        return out

    @property
    def clip_alphas(self) -> bool:
        if self._clip_alphas is not None:
            return bool(self._clip_alphas)
        config = getattr(self, "config", None)
        return config is not None and config.space == "nas-bench-201"

    def bind(self, net: nn.Module, w_optimizer: torch.optim.Optimizer,
             config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        kwargs = dict(lr=self.arch_lr, betas=(0.5, 0.999), weight_decay=self.arch_weight_decay)
        self.xi_scale = 1.0
        if self.unroll_nesterov:
            group = w_optimizer.param_groups[0]
            if not (self.unrolled and group.get("nesterov")):
                raise ValueError("unroll_nesterov needs DARTS-V2 and a Nesterov SGD optimizer")
            self.xi_scale = 1.0 + float(group["momentum"])
            self.architect = NesterovUnroll(net, _loss_and_logits, momentum=group["momentum"],
                                            **kwargs)
        else:
            self.architect = Architect(net, _loss_and_logits, **kwargs)
        self.weights = [p for p in net.weight_parameters() if p.requires_grad]
        self.clipped = list(net.parameters()) if self.clip_alphas else self.weights

    def epoch_start(self, epoch: int) -> Dict[str, Any]:
        if self.derive_at == "epoch_start":
            self._start_arch = self.net.derive()
        return {}

    def derive(self, net: nn.Module):
        if self.derive_at == "epoch_start" and self._start_arch is not None:
            return self._start_arch
        return net.derive()

    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        if self.step_order == "weights_first":
            figures = self._weight_step(net, train_batch)
            return {**figures, **self._arch_step(train_batch, val_batch)}
        figures = self._arch_step(train_batch, val_batch)
        return {**self._weight_step(net, train_batch), **figures}

    def _arch_step(self, train_batch, val_batch) -> Dict[str, Any]:
        """xi = the weights' current lr, set by the trainer for this epoch."""
        lr = self.w_optimizer.param_groups[0]["lr"]
        val_loss = self.architect.step(train_batch, val_batch, lr * self.xi_scale,
                                       self.w_optimizer, unrolled=self.unrolled)
        with torch.no_grad():
            val_acc = (self.architect.last_aux.argmax(1) == val_batch[1]).float().mean()
        self.architect.last_aux = None
        return {"val_loss": val_loss, "val_acc": val_acc}

    def _weight_step(self, net: nn.Module, train_batch) -> Dict[str, Any]:
        xw, yw = train_batch
        self.w_optimizer.zero_grad()
        logits = net(xw, mode="softmax")
        loss = F.cross_entropy(logits, yw)
        if self.clip_alphas:  # AutoDL: the alphas' gradient (dalpha + this loss's) is clipped too
            loss.backward()
        else:  # quark0: the alphas' gradient is the architect's alone
            loss.backward(inputs=self.weights)
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.clipped, self.config.grad_clip)
        self.w_optimizer.step()
        with torch.no_grad():
            return {"train_loss": loss.detach(),
                    "train_acc": (logits.argmax(1) == yw).float().mean()}

    def state_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"architect": self.architect.state_dict()}
        if self.step_order == "weights_first":  # the next weight step clips with it
            out["alpha_grads"] = [None if p.grad is None else p.grad.detach().cpu()
                                  for p in self.net.arch_parameters()]
        if self._start_arch is not None:
            from api.spaces import get_space

            out["start_arch"] = get_space(self.config.space).format(self._start_arch)
        return out

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.architect.load_state_dict(state["architect"])
        for p, g in zip(self.net.arch_parameters(), state.get("alpha_grads", ())):
            p.grad = None if g is None else g.to(p.device).clone()
        if state.get("start_arch") is not None:
            from api.spaces import get_space

            self._start_arch = get_space(self.config.space).parse(state["start_arch"])
