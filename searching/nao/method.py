"""NAO-WS on the one weight-sharing trainer (TF renqianluo/NAO ``NAO-WS/cnn``).

- ``step``: one supernet weight step on an architecture drawn uniformly from the pool; every
  weight is decayed, used or not (:class:`TFWeightStep`).
- ``epoch_end`` at the evaluation points (``--epochs`` cut into ``--iterations + 1`` parts):
  every pool architecture is scored on one validation batch, the pool files are written
  (:func:`searching.nao.pool.write_pool`), and (except at the last point) the controller is
  trained on the pool (:func:`searching.nao.optimize.train_controller`) and generates
  ``--new_arch`` unseen architectures that replace the pool's worst; ``arch_pool`` then holds
  the next pool, as NAO's.
- ``derive``: the best measured architecture of the last evaluation.

Fidelity notes (pool sizes, TF vs NAO_pytorch): docs/fidelity/nao.md.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from api.errors import UserError
from api.spaces.enas_micro import MicroArch
from api.spaces.enas_micro.arch import make_arch
from searching.enas.cnn_method import sgdr_lr  # ENAS's child_lr_cosine, as NAO-WS's
from searching.nao.controller import ControllerConfig, NAOController, make_optimizer
from searching.nao.optimize import generate_archs, normalise, predict, train_controller
from searching.nao.pool import (PoolEntry, pairwise_accuracy, random_archs, sort_entries,
                                write_next_pool, write_pool)
from searching.oneshot.trainer import (OneShotConfig, OneShotMethod, PersistentIterator,
                                       sampled_arch_step)


class TFWeightStep:
    """The supernet's optimizer step as TF's ``utils.get_train_ops`` makes it: ``l2 * sum(w**2)``
    is in the loss, so every weight gets the decay gradient at every step, those of the ops
    the sampled architecture leaves out included (decayed, their momentum applied; torch's SGD
    would skip them), and ``clip_norm > 0`` clips each tensor's gradient, decay included, to
    that norm (TF's ``clip_mode="norm"`` as meant; TF's own code appends the unclipped
    gradient, hence ``--grad_clip 0``). The wrapped SGD keeps its momentum and Nesterov."""

    def __init__(self, optimizer: torch.optim.Optimizer, clip_norm: float = 0.0) -> None:
        self.optimizer, self.clip_norm = optimizer, float(clip_norm)

    def zero_grad(self) -> None:
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                else:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        decays = []
        for group in self.optimizer.param_groups:
            wd = group.get("weight_decay", 0.0)
            decays.append(wd)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if wd:
                    p.grad.add_(p, alpha=wd)
                if self.clip_norm > 0:
                    norm = p.grad.norm()
                    if norm > self.clip_norm:
                        p.grad.mul_(self.clip_norm / norm)
            group["weight_decay"] = 0.0
        try:
            self.optimizer.step()
        finally:
            for group, wd in zip(self.optimizer.param_groups, decays):
                group["weight_decay"] = wd


def eval_points(epochs: int, iterations: int) -> List[int]:
    """The epochs (1-based) after which the pool is evaluated: ``iterations + 1`` equal
    parts of ``epochs``."""
    if iterations < 1:
        raise UserError("--iterations must be at least 1 (pool updates before the final "
                        "evaluation)")
    if epochs < iterations + 1:
        raise UserError(f"--epochs {epochs} cannot hold --iterations {iterations} pool updates "
                        f"and a final evaluation: give at least {iterations + 1} epochs")
    return [round(epochs * k / (iterations + 1)) for k in range(1, iterations + 2)]


class NAOWS(OneShotMethod):
    name = "nao-ws"

    def __init__(self, seed_arch: int = 1000, new_arch: int = 500,
                 random_arch: Optional[int] = None, iterations: int = 4,
                 controller_epochs: int = 1000, top_archs: int = 100, max_step: int = 100,
                 eval_batch_size: int = 500, aux_weight: float = 0.4, symmetry: bool = True,
                 lr_t0: int = 10, lr_t_mul: int = 2,
                 controller: Optional[ControllerConfig] = None, seed: int = 0,
                 out_dir: Optional[str] = None, progress: bool = False,
                 initial_pool: Optional[Sequence[MicroArch]] = None) -> None:
        if seed_arch < 2:
            raise UserError("--seed_arch must be at least 2")
        random_arch = seed_arch // 20 if random_arch is None else int(random_arch)
        self.initial_pool = None if initial_pool is None else list(initial_pool)
        size, what = ((seed_arch, f"--seed_arch {seed_arch}") if self.initial_pool is None else
                      (len(self.initial_pool), f"the {len(self.initial_pool)} architectures of "
                                               f"--child_arch_pool"))
        if new_arch < 0 or random_arch < 0 or new_arch + random_arch >= size:
            raise UserError(f"--new_arch {new_arch} + --random_arch {random_arch} must be below "
                            f"{what} (the pool keeps its best of the rest)")
        if controller_epochs < 1 or eval_batch_size < 1 or top_archs < 1:
            raise UserError("--controller_epochs, --eval_batch_size and --top_archs must be at "
                            "least 1")
        self.seed_arch, self.new_arch, self.random_arch = seed_arch, new_arch, random_arch
        self.iterations, self.controller_epochs = iterations, controller_epochs
        self.top_archs, self.max_step, self.eval_batch_size = top_archs, max_step, eval_batch_size
        self.aux_weight, self.symmetry = float(aux_weight), bool(symmetry)
        self.lr_t0, self.lr_t_mul = int(lr_t0), int(lr_t_mul)
        self.controller_config = controller or ControllerConfig()
        self.seed, self.out_dir, self.progress = seed, out_dir, progress
        self._eval_state: Optional[Dict[str, Any]] = None
        self.eval_iter: Optional[PersistentIterator] = None

    def settings(self) -> Dict[str, Any]:
        return {"seed_arch": self.seed_arch, "new_arch": self.new_arch,
                "random_arch": self.random_arch, "iterations": self.iterations,
                "controller_epochs": self.controller_epochs, "top_archs": self.top_archs,
                "max_step": self.max_step, "eval_batch_size": self.eval_batch_size,
                "aux_weight": self.aux_weight, "symmetry": self.symmetry,
                "lr_t0": self.lr_t0, "lr_t_mul": self.lr_t_mul,
                "initial_pool": None if self.initial_pool is None else len(self.initial_pool),
                "controller": self.controller_config.to_dict()}

    # ------------------------------------------------------------------ setup
    def bind(self, net: nn.Module, w_optimizer: torch.optim.Optimizer,
             config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        self.points = eval_points(config.epochs, self.iterations)
        device = next(net.parameters()).device
        self.generator = torch.Generator().manual_seed(self.seed + 11)
        self.controller = NAOController(self.controller_config).to(device)
        self.c_optimizer = make_optimizer(self.controller)
        self.controller_step = 0
        self.controller_trained = False
        self.target_range = (0.0, 1.0)
        self.pool: List[MicroArch] = (list(self.initial_pool) if self.initial_pool is not None
                                      else random_archs(self.seed_arch, self.generator))
        self.seen = set(self.pool)
        self.entries: List[PoolEntry] = []

    def epoch_lr(self, epoch: int, default: float) -> float:
        return sgdr_lr(epoch, self.config.lr, self.config.lr_min, self.lr_t0, self.lr_t_mul)

    def edge_weights(self, net: nn.Module) -> Dict[str, torch.Tensor]:
        return {}

    # ------------------------------------------------------------------ weight step
    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        x, y = train_batch
        if hasattr(net, "step_ratio"):  # drop-path grows with progress (ENAS/NAO), per epoch
            net.step_ratio = epoch / self.config.epochs
        arch = self.pool[int(torch.randint(len(self.pool), (1,), generator=self.generator))]
        # the clip happens in TFWeightStep, after the decay term joins the gradient
        return sampled_arch_step(net, TFWeightStep(self.w_optimizer, self.config.grad_clip),
                                 x, y, arch, self.aux_weight, 0.0)

    # ------------------------------------------------------------------ pool rounds
    def _evaluate_pool(self, net: nn.Module, feed) -> List[float]:
        """Validation accuracy of every pool architecture, one fresh batch each."""
        if self.eval_iter is None:
            self.eval_iter = PersistentIterator(feed.data.arch, self.eval_batch_size,
                                                self.seed + 12)
            if self._eval_state is not None:
                self.eval_iter.load_state_dict(self._eval_state)
        norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [m.momentum for m in norms]
        net.eval()
        for m in norms:  # batch statistics, running statistics unchanged
            m.train()
            m.momentum = 0.0
        accs = []
        from api.progress import progress

        bar = progress(total=len(self.pool), desc="pool evaluation", unit="arch", leave=False,
                   disable=not self.progress, dynamic_ncols=True)
        try:
            with torch.no_grad():
                for arch in self.pool:
                    x, y = self.eval_iter.next()
                    out = net(x, arch)
                    logits = out[0] if isinstance(out, (tuple, list)) else out
                    accs.append(float((logits.argmax(1) == y).double().mean()))
                    bar.update(1)
        finally:
            bar.close()
            for m, mom in zip(norms, saved):
                m.momentum = mom
            net.train()
        return accs

    def epoch_end(self, net: nn.Module, feed, epoch: int) -> Dict[str, Any]:
        if epoch + 1 not in self.points:
            return {}
        t0 = time.perf_counter()
        measured = self._evaluate_pool(net, feed)
        out: Dict[str, Any] = {"pool_eval_seconds": time.perf_counter() - t0,
                               "val_acc": max(measured), "pool_size": len(self.pool),
                               "pool_best": max(measured),
                               "pool_mean": sum(measured) / len(measured)}
        if self.controller_trained:
            lo, hi = self.target_range
            pred = [lo + p * (hi - lo) for p in predict(self.controller, self.pool)]
            out["pool_predicted_pairwise_acc"] = pairwise_accuracy(measured, pred)
        else:
            pred = [math.nan] * len(self.pool)
        self.entries = sort_entries([PoolEntry(a, m, p) for a, m, p in
                                     zip(self.pool, measured, pred)])
        if self.out_dir is not None:
            write_pool(Path(self.out_dir), self.entries, epoch + 1)
        if epoch + 1 == self.points[-1]:
            return out
        out.update(self._next_pool())
        if self.out_dir is not None:
            write_next_pool(Path(self.out_dir), self.pool)
        return out

    def _next_pool(self) -> Dict[str, Any]:
        archs = [e.arch for e in self.entries]
        targets, lo, hi = normalise([e.measured for e in self.entries])
        self.target_range = (lo, hi)  # maps the next predictions back to accuracies
        bar = None
        if self.progress:
            from api.progress import progress

            bar = progress(total=self.controller_epochs, desc="controller", unit="epoch",
                       leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()  # phase timings: the search-cost projection's inputs
        figures = train_controller(self.controller, self.c_optimizer, archs, targets,
                                   self.controller_epochs, self.generator, self.controller_step,
                                   symmetry=self.symmetry, progress=bar)
        t1 = time.perf_counter()
        if bar is not None:
            bar.close()
        self.controller_step = int(figures.pop("controller_step"))
        self.controller_trained = True
        new, lam = generate_archs(self.controller, archs[:self.top_archs], self.new_arch,
                                  self.seen, self.max_step)
        self.seen.update(new)
        fresh = random_archs(self.random_arch, self.generator, self.seen)
        self.seen.update(fresh)
        keep = len(archs) - len(new) - len(fresh)
        self.pool = archs[:keep] + new + fresh
        return {**figures, "new_archs": len(new), "step_size": lam,
                "random_archs": len(fresh), "controller_seconds": t1 - t0,
                "generate_seconds": time.perf_counter() - t1}

    def derive(self, net: nn.Module) -> MicroArch:
        return self.entries[0].arch if self.entries else self.pool[0]

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> Dict[str, Any]:
        return {"pool": [a.to_list() for a in self.pool],
                "seen": sorted(a.to_list() for a in self.seen),
                "entries": [[e.arch.to_list(), e.measured, e.predicted] for e in self.entries],
                "controller": self.controller.state_dict(),
                "c_optimizer": self.c_optimizer.state_dict(),
                "controller_step": self.controller_step,
                "controller_trained": self.controller_trained,
                "target_range": list(self.target_range),
                "generator": self.generator.get_state(),
                "eval_iter": None if self.eval_iter is None else self.eval_iter.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.pool = [make_arch(a) for a in state["pool"]]
        self.seen = {make_arch(a) for a in state["seen"]}
        self.entries = [PoolEntry(make_arch(a), float(m), float(p))
                        for a, m, p in state["entries"]]
        self.controller.load_state_dict(state["controller"])
        self.c_optimizer.load_state_dict(state["c_optimizer"])
        self.controller_step = int(state["controller_step"])
        self.controller_trained = bool(state["controller_trained"])
        lo, hi = state["target_range"]
        self.target_range = (float(lo), float(hi))
        self.generator.set_state(state["generator"])
        self._eval_state = state["eval_iter"]
        if self.eval_iter is not None and self._eval_state is not None:
            self.eval_iter.load_state_dict(self._eval_state)
