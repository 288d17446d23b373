"""DARTS's architecture step (Liu et al., ICLR 2019), first order (V1) and second order (V2).

A re-implementation of quark0/darts ``cnn/architect.py`` (commit a00cad0) on the supernet
interface of :mod:`api.spaces.supernet`. ``loss_fn(model, batch) -> loss`` (or ``(loss, aux)``,
e.g. the RNN's next hidden state, kept in ``last_aux``) lets one architect serve the CNN
supernets and the RNN one. V1: dα = ∇α L_val(w, α). V2: the virtual step
w' = w − ξ (μ·b + ∇w L_train + λ·w) (the weight optimizer's own next SGD step), then
dα = ∇α L_val(w', α) − ξ [∇α L_train(w⁺) − ∇α L_train(w⁻)] / (2ε) with w± = w ± ε v,
v = ∇w' L_val(w', α), ε = 0.01 / ‖v‖. Then one Adam step on α. The step leaves the weights,
their ``.grad`` and the BN buffers as they were.

Fidelity notes: docs/fidelity/darts.md.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

LossFn = Callable[[nn.Module, Any], Any]

#: DARTS's defaults for the architecture optimizer (official ``cnn/train_search.py``).
ARCH_LR = 3e-4
ARCH_BETAS = (0.5, 0.999)
ARCH_WEIGHT_DECAY = 1e-3
#: The numerator of ε = r / ‖∇w' L_val(w', α)‖ (official ``_hessian_vector_product``).
FD_R = 1e-2


def _split(out: Any) -> Tuple[torch.Tensor, Any]:
    """A loss function's result as (loss, aux): a tensor, or a (loss, aux...) tuple."""
    if isinstance(out, (tuple, list)):
        return out[0], (out[1] if len(out) == 2 else tuple(out[1:]))
    return out, None


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """d loss / d params, zeros for parameters the loss does not use."""
    gs = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


class _RngState:
    """The CPU RNG state plus that of the CUDA devices the parameters live on."""

    def __init__(self, devices: Sequence[torch.device]) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = {d: torch.cuda.get_rng_state(d) for d in devices}

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        for d, s in self.cuda.items():
            torch.cuda.set_rng_state(s, d)


class Architect:
    """DARTS's architecture step for ``model`` (a supernet: ``arch_parameters()``,
    ``weight_parameters()``), with ``loss_fn(model, batch)`` the loss on one batch.

    The alpha optimizer is Adam with DARTS's defaults unless other values are passed (the
    RNN search passes its own: lr 3e-3, betas (0.9, 0.999), weight decay 1e-3).

    ``grad_clip`` (None for the CNNs) is the official RNN architect's V2: the training
    gradient of the virtual step is clipped to this total norm (factor c ≤ 1), so is the vector
    v = ∇w' L_val before the finite difference, and the implicit term is scaled by ξ·c with
    c = min(1, max_norm/(‖g‖ + 1e-6)), the factor the virtual step applied. With
    ``cap_clip_factor=False`` the scale is ξ·max_norm/(‖g‖ + 1e-6) even when that exceeds 1,
    as the official RNN code.

    ``unstepped``: weights the virtual step leaves at w (w' = w for them; they are still
    perturbed by ε·v in the finite difference). The official RNN code's unrolled model gets its
    tied embedding/decoder weight back at w (docs/fidelity/darts.md).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, lr: float = ARCH_LR,
                 betas: Tuple[float, float] = ARCH_BETAS,
                 weight_decay: float = ARCH_WEIGHT_DECAY, r: float = FD_R,
                 grad_clip: Optional[float] = None, cap_clip_factor: bool = True,
                 unstepped: Sequence[torch.Tensor] = ()) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.r = float(r)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.cap_clip_factor = bool(cap_clip_factor)
        self._unstepped = {id(p) for p in unstepped}
        self.arch_params: List[nn.Parameter] = list(model.arch_parameters())
        if not self.arch_params:
            raise ValueError("the model has no architecture parameters")
        self.optimizer = torch.optim.Adam(self.arch_params, lr=lr, betas=tuple(betas),
                                          weight_decay=weight_decay)
        #: The ``aux`` of the last validation forward (e.g. the RNN's next hidden state).
        self.last_aux: Any = None

    # ------------------------------------------------------------------ helpers
    def _weights(self) -> List[nn.Parameter]:
        return [p for p in self.model.weight_parameters() if p.requires_grad]

    def _loss(self, batch: Any) -> Tuple[torch.Tensor, Any]:
        return _split(self.loss_fn(self.model, batch))

    def _devices(self, params: Sequence[torch.Tensor]) -> List[torch.device]:
        return sorted({p.device for p in params if p.device.type == "cuda"}, key=str)

    def state_dict(self) -> Dict[str, Any]:
        """The alpha optimizer's state (for checkpoints)."""
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])

    # ------------------------------------------------------------- the V2 parts
    @staticmethod
    def _sgd_terms(weights: Sequence[nn.Parameter], w_optimizer: Optional[torch.optim.Optimizer]):
        """Per weight: (momentum · momentum buffer or None, weight decay) of the weight
        optimizer, as its next step would use them."""
        group_of: Dict[int, dict] = {}
        if w_optimizer is not None:
            for group in w_optimizer.param_groups:
                for p in group["params"]:
                    group_of[id(p)] = group
        out = []
        for p in weights:
            group = group_of.get(id(p), {})
            momentum = float(group.get("momentum", 0.0) or 0.0)
            wd = float(group.get("weight_decay", 0.0) or 0.0)
            buf = None
            if momentum and w_optimizer is not None:
                buf = w_optimizer.state.get(p, {}).get("momentum_buffer")
            out.append((None if buf is None else momentum * buf, wd))
        return out

    def _clip_factor(self, grads: Sequence[torch.Tensor], capped: bool = True):
        """grad_clip / (‖grads‖ + 1e-6) as a 0-dim tensor, at most 1 when ``capped`` (1.0
        without clipping)."""
        if self.grad_clip is None:
            return 1.0
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        factor = self.grad_clip / (norm + 1e-6)
        return torch.clamp(factor, max=1.0) if capped else factor

    def virtual_step(self, train_batch: Any, lr: float,
                     w_optimizer: Optional[torch.optim.Optimizer]) -> List[torch.Tensor]:
        """w' = w − ξ (μ·b + ∇w L_train(w, α) + λ·w), ξ = ``lr``, per weight (new tensors;
        the model is not changed). With ``grad_clip`` the gradient is clipped first; the
        ``unstepped`` weights stay at w."""
        return self._virtual_step(train_batch, lr, w_optimizer)[0]

    def _virtual_step(self, train_batch: Any, lr: float,
                      w_optimizer: Optional[torch.optim.Optimizer]):
        """(w', the implicit term's clip scale)."""
        weights = self._weights()
        loss, _ = self._loss(train_batch)
        grads = _grads(loss, weights)
        clip = self._clip_factor(grads)
        scale = clip if self.cap_clip_factor else self._clip_factor(grads, capped=False)
        if self.grad_clip is not None:
            grads = [g * clip for g in grads]
        out = []
        with torch.no_grad():
            for p, g, (mbuf, wd) in zip(weights, grads, self._sgd_terms(weights, w_optimizer)):
                if id(p) in self._unstepped:
                    out.append(p.detach().clone())
                    continue
                d = g.detach().clone()
                if wd:
                    d.add_(p, alpha=wd)
                if mbuf is not None:
                    d.add_(mbuf)
                out.append(p.detach() - lr * d)
        return out, scale

    def _unrolled_grads(self, train_batch: Any, val_batch: Any, lr: float,
                        w_optimizer: Optional[torch.optim.Optimizer],
                        weights: List[nn.Parameter], saved: List[torch.Tensor]):
        """dα of V2 and the validation loss at w'. Leaves w' ± perturbations in the
        weights; the caller restores ``saved``."""
        w_virtual, clip = self._virtual_step(train_batch, lr, w_optimizer)
        with torch.no_grad():
            for p, wv in zip(weights, w_virtual):
                p.copy_(wv)
        val_loss, self.last_aux = self._loss(val_batch)
        grads = _grads(val_loss, self.arch_params + weights)
        dalpha = grads[:len(self.arch_params)]
        vector = grads[len(self.arch_params):]
        del w_virtual, grads
        if self.grad_clip is not None:
            vclip = self._clip_factor(vector)
            vector = [v * vclip for v in vector]

        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in vector]))
        # a 0-dim tensor (no device sync); v = 0 gives a zero implicit term, not NaN
        eps = self.r / norm.clamp_min(1e-30)
        rng = _RngState(self._devices(weights))
        with torch.no_grad():
            for p, w, v in zip(weights, saved, vector):
                p.copy_(w + eps * v)
        loss_p, _ = self._loss(train_batch)
        g_plus = _grads(loss_p, self.arch_params)
        rng.restore()
        with torch.no_grad():
            for p, w, v in zip(weights, saved, vector):
                p.copy_(w - eps * v)
        loss_n, _ = self._loss(train_batch)
        g_minus = _grads(loss_n, self.arch_params)
        with torch.no_grad():
            scale = lr * clip / (2 * eps)
            dalpha = [(da - scale * (gp - gn)).detach()
                      for da, gp, gn in zip(dalpha, g_plus, g_minus)]
        return dalpha, val_loss.detach()

    # --------------------------------------------------------------------- step
    def step(self, train_batch: Any, val_batch: Any, lr: float,
             w_optimizer: Optional[torch.optim.Optimizer] = None,
             unrolled: bool = False) -> torch.Tensor:
        """One architecture step (V2 if ``unrolled``; ξ = ``lr``, the weights' current
        learning rate; ``w_optimizer`` the weight optimizer, read for its momentum buffers,
        momentum and weight decay). Leaves the weights, their ``.grad`` and the model's
        buffers as they were; sets each alpha's ``.grad`` to dα and takes the Adam step.
        Returns the (detached) validation loss: at w for V1, at w' for V2."""
        buffers = [b for b in self.model.buffers()]
        saved_buffers = [b.detach().clone() for b in buffers]
        weights = self._weights() if unrolled else []
        saved = [p.detach().clone() for p in weights]
        try:
            if unrolled:
                dalpha, val_loss = self._unrolled_grads(train_batch, val_batch, lr,
                                                        w_optimizer, weights, saved)
            else:
                loss, self.last_aux = self._loss(val_batch)
                dalpha = [g.detach() for g in _grads(loss, self.arch_params)]
                val_loss = loss.detach()
        finally:
            with torch.no_grad():
                for p, w in zip(weights, saved):
                    p.copy_(w)
                for b, s in zip(buffers, saved_buffers):
                    b.copy_(s)
        for a, g in zip(self.arch_params, dalpha):
            a.grad = g.clone()
        self.optimizer.step()
        return val_loss
