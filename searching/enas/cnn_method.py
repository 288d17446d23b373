"""ENAS's CNN search (macro or micro) as a method of the one weight-sharing trainer.

Per epoch, as melodyguan/enas ``src/cifar10/main.py`` with ``controller_train_every=1``:
a child phase (:meth:`EnasCNN.step`: the controller samples an architecture per training
minibatch and the shared network takes one SGD step on it), a controller phase
(:meth:`EnasCNN.epoch_end`: ``controller_max_step`` REINFORCE steps averaging
``num_aggregate`` samples, rewarded by accuracy on one validation minibatch plus an entropy
bonus), then derivation (the best of ``derive_num_sample`` samples).

The controller's Adam is TF's (:class:`searching.enas.reinforce.TFAdam`); the child's clip,
its frozen auxiliary head and the macro BN statistics follow TF's code, with flags for the
alternatives. Fidelity notes: docs/fidelity/enas.md.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from searching.enas.reinforce import EMABaseline, controller_lr, make_controller_optimizer, \
    policy_loss
from searching.enas.cnn_flags import CLIP_MODES
from searching.oneshot.trainer import OneShotConfig, OneShotMethod


def sgdr_lr(epoch: int, lr_max: float, lr_min: float, t0: int, t_mul: int) -> float:
    """ENAS's ``lr_cosine``: cosine from ``lr_max`` to ``lr_min`` over periods of ``t0``,
    ``t0 * t_mul``, ... epochs, restarting at ``lr_max`` (150 epochs = 10 + 20 + 40 + 80)."""
    start, period = 0, max(1, int(t0))
    while epoch - start >= period:
        start += period
        period *= max(1, int(t_mul))
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * (epoch - start) / period))


def clip_gradients(params, mode: str, bound: float) -> None:
    """The child's gradient clip (``--child_clip_mode``): ``tf`` none (TF's "norm" mode keeps
    the unclipped gradients), ``norm`` each tensor's norm at most ``bound``, ``global`` the
    global norm at most ``bound``."""
    if bound <= 0 or mode == "tf":
        return
    grads = [p for p in params if p.grad is not None]
    if mode == "global":
        nn.utils.clip_grad_norm_(grads, bound)
    else:
        for p in grads:
            nn.utils.clip_grad_norm_([p], bound)


def child_step(net: nn.Module, w_optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, arch, aux_weight: float, clip_mode: str, bound: float
               ) -> Dict[str, Any]:
    """One child SGD step on one sampled architecture: cross-entropy (+ ``aux_weight`` x the
    auxiliary head's), :func:`clip_gradients`, step. Weights the architecture leaves unused
    get a zero loss gradient, so weight decay and momentum move them as TF's ``l2 * sum(w^2)``
    term and momentum do."""
    w_optimizer.zero_grad()
    out = net(x, arch)
    logits, aux = out if isinstance(out, (tuple, list)) else (out, None)
    loss = F.cross_entropy(logits, y)
    total = loss + aux_weight * F.cross_entropy(aux, y) if aux is not None and \
        aux_weight > 0 else loss
    total.backward()
    for p in net.parameters():  # TF's l2 term gives every variable a gradient every step
        if p.grad is None and p.requires_grad:
            p.grad = torch.zeros_like(p)
    clip_gradients(net.parameters(), clip_mode, bound)
    w_optimizer.step()
    with torch.no_grad():
        return {"train_loss": loss.detach(), "train_acc": (logits.argmax(1) == y).float().mean()}


@contextmanager
def batch_statistics(net: nn.Module, on: bool = True):
    """With ``on``, BN layers of ``net`` normalise with the batch's own statistics; their
    running statistics are put back afterwards."""
    saved = []
    if on:
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                saved.append((m, m.training, [b.clone() for b in (
                    m.running_mean, m.running_var, m.num_batches_tracked)]))
                m.train()
    try:
        yield
    finally:
        for m, training, buffers in saved:
            m.train(training)
            for b, old in zip((m.running_mean, m.running_var, m.num_batches_tracked), buffers):
                b.copy_(old)


class EnasCNN(OneShotMethod):
    """ENAS on the macro or micro space (see the module doc)."""

    def __init__(self, controller: nn.Module, space: str, *, child_lr_max: float,
                 child_lr_min: float, child_t0: int, child_t_mul: int, aux_weight: float,
                 controller_optim: str, controller_lr: float, controller_lr_cosine: bool,
                 controller_lr_max: Optional[float], controller_lr_min: float,
                 controller_steps: int, num_aggregate: int, entropy_coeff: float,
                 baseline_decay: float, skip_weight: float, controller_grad_clip: float,
                 derive_num_sample: int, seed: int, progress: bool = False,
                 reward_batches: int = 1, clip_mode: str = "tf", train_aux_head: bool = False,
                 reward_bn: Optional[str] = None) -> None:
        self.name = f"enas-{space}"
        self.progress = bool(progress)
        self.space = space
        self.controller = controller
        self.hp = dict(child_lr_max=child_lr_max, child_lr_min=child_lr_min,
                       child_t0=child_t0, child_t_mul=child_t_mul, aux_weight=aux_weight,
                       controller_optim=str(controller_optim).lower(),
                       controller_lr=controller_lr, controller_lr_cosine=bool(controller_lr_cosine),
                       controller_lr_max=controller_lr_max, controller_lr_min=controller_lr_min,
                       controller_steps=int(controller_steps), num_aggregate=int(num_aggregate),
                       entropy_coeff=float(entropy_coeff), baseline_decay=float(baseline_decay),
                       skip_weight=float(skip_weight),
                       controller_grad_clip=float(controller_grad_clip),
                       derive_num_sample=int(derive_num_sample),
                       reward_batches=max(1, int(reward_batches)), clip_mode=str(clip_mode),
                       train_aux_head=bool(train_aux_head),
                       reward_bn=reward_bn or ("train" if space == "micro" else "running"))
        if self.hp["clip_mode"] not in CLIP_MODES:
            raise ValueError(f"clip_mode {clip_mode!r} is not one of {', '.join(CLIP_MODES)}")
        if self.hp["reward_bn"] not in ("train", "running", "batch"):
            raise ValueError(f"reward_bn {reward_bn!r} is not train, running or batch")
        self.seed = int(seed)
        self.baseline = EMABaseline(baseline_decay)
        self.controller_step = 0
        self.derived = None

    def settings(self) -> Dict[str, Any]:
        c = self.controller
        skip = getattr(c, "skip_targets", None)
        return dict(self.hp, controller=type(c).__name__, lstm_size=c.H, tanh_c=c.tanh_c,
                    temperature=c.temperature,
                    op_tanh_reduce=getattr(c, "op_tanh_reduce", None),
                    skip_target=None if skip is None else round(float(skip[1]), 6),
                    controller_params=sum(p.numel() for p in c.parameters()))

    def bind(self, net: nn.Module, w_optimizer: torch.optim.Optimizer,
             config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        device = next(net.parameters()).device
        self.controller.to(device)
        self.c_optimizer = make_controller_optimizer(self.controller.parameters(),
                                                     self.hp["controller_optim"],
                                                     self.hp["controller_lr"], tf_adam=True)
        self.generator = torch.Generator().manual_seed(self.seed + 5)
        aux = getattr(net, "aux_head", None)
        if aux is not None and not self.hp["train_aux_head"]:
            for p in aux.parameters():  # TF trains every child variable but "aux_head"'s
                p.requires_grad_(False)

    # ------------------------------------------------------------------ schedule
    def epoch_lr(self, epoch: int, default: float) -> float:
        hp = self.hp
        return sgdr_lr(epoch, hp["child_lr_max"], hp["child_lr_min"], hp["child_t0"],
                       hp["child_t_mul"])

    def _controller_lr(self) -> float:
        hp = self.hp
        total = max(1, self.config.epochs * hp["controller_steps"])
        return controller_lr(self.controller_step, total, hp["controller_lr"],
                             hp["controller_lr_cosine"], hp["controller_lr_max"],
                             hp["controller_lr_min"])

    # ------------------------------------------------------------------ child phase
    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        x, y = train_batch
        with torch.no_grad():
            arch = self.controller.sample(self.generator).arch
        net.train()
        return child_step(net, self.w_optimizer, x, y, arch, self.hp["aux_weight"],
                          self.hp["clip_mode"], self.config.grad_clip)

    # ------------------------------------------------------------------ controller phase
    def _accuracy(self, net: nn.Module, arch, batch) -> float:
        x, y = batch
        mode = self.hp["reward_bn"]
        net.train(mode == "train")  # ENAS: micro forces training mode, macro infers
        with torch.no_grad(), batch_statistics(net, mode == "batch"):
            out = net(x, arch)
        logits = out[0] if isinstance(out, tuple) else out
        return float((logits.argmax(1) == y).float().mean())

    def epoch_end(self, net: nn.Module, feed, epoch: int) -> Dict[str, Any]:
        hp = self.hp
        rewards, accs, ents, skips, losses = [], [], [], [], []
        lr = self._controller_lr()
        self.controller.train()
        from api.progress import progress

        bar = progress(total=hp["controller_steps"], desc=f"controller {epoch + 1}", unit="step",
                   leave=False, disable=not self.progress or hp["controller_steps"] == 0,
                   dynamic_ncols=True)
        for _ in range(hp["controller_steps"]):
            lr = self._controller_lr()
            for group in self.c_optimizer.param_groups:
                group["lr"] = lr
            self.c_optimizer.zero_grad()
            for _ in range(hp["num_aggregate"]):
                sample = self.controller.sample(self.generator)
                acc = sum(self._accuracy(net, sample.arch, feed.val_iter.next())
                          for _ in range(hp["reward_batches"])) / hp["reward_batches"]
                reward = acc + hp["entropy_coeff"] * sample.entropy
                adv = self.baseline.advantage(reward)
                loss = policy_loss(sample.log_prob, adv)
                if sample.skip_penalty is not None and hp["skip_weight"] > 0:
                    loss = loss + hp["skip_weight"] * sample.skip_penalty
                (loss / hp["num_aggregate"]).backward()
                rewards.append(reward)
                accs.append(acc)
                ents.append(sample.entropy)
                losses.append(float(loss.detach()))
                if self.space == "macro":
                    skips.append(sample.skip_count)
            if hp["controller_grad_clip"] > 0:
                nn.utils.clip_grad_norm_(self.controller.parameters(), hp["controller_grad_clip"])
            self.c_optimizer.step()
            self.controller_step += 1
            bar.update(1)
        bar.close()
        record: Dict[str, Any] = {"controller_lr": lr,
                                  "controller_steps": hp["controller_steps"]}
        if rewards:
            n = len(rewards)
            record.update(reward=sum(rewards) / n, val_acc=sum(accs) / n,
                          entropy=sum(ents) / n, baseline=self.baseline.value,
                          controller_loss=sum(losses) / n)
            if skips:
                layers = getattr(self.controller, "num_layers", 2)
                pairs = layers * (layers - 1) / 2
                record["skip_rate"] = sum(skips) / n / max(1.0, pairs)
        record.update(self._derive(net, feed))
        return record

    def _derive(self, net: nn.Module, feed) -> Dict[str, Any]:
        best, best_acc = None, -1.0
        self.controller.eval()
        with torch.no_grad():
            for _ in range(max(1, self.hp["derive_num_sample"])):
                arch = self.controller.sample(self.generator).arch
                acc = self._accuracy(net, arch, feed.val_iter.next())
                if acc > best_acc:
                    best, best_acc = arch, acc
        self.derived = best
        return {"derive_acc": best_acc}

    def derive(self, net: nn.Module):
        if self.derived is None:
            with torch.no_grad():
                self.derived = self.controller.sample(self.generator).arch
        return self.derived

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        return {"controller": self.controller.state_dict(),
                "c_optimizer": self.c_optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "baseline": self.baseline.state_dict(),
                "controller_step": self.controller_step}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.c_optimizer.load_state_dict(state["c_optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline.load_state_dict(state["baseline"])
        self.controller_step = int(state["controller_step"])
