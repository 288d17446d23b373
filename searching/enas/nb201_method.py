"""ENAS on the NAS-Bench-201 space as AutoDL-Projects runs it (``exps/NAS-Bench-201-algos/
ENAS.py``), a method of the one weight-sharing trainer.

Per epoch: the shared-network phase (:meth:`EnasNB201.step`: the controller samples one cell per
training batch, the supernet takes one SGD step on that cell alone, gradient norm clipped to 5);
the controller phase (:meth:`EnasNB201.epoch_end`: ``train_steps x num_aggregate`` samples, each
rewarded by its accuracy on one augmented validation batch plus ``entropy_weight`` x its
entropy, gradients averaged over ``num_aggregate`` samples, clipped to 5, one Adam step); then
the epoch's cell, the best of ``derive_samples`` samples by one-batch accuracy. After the last
epoch the searched cell is the best of ``final_samples`` samples, as AutoDL's returned
architecture. The baseline is :class:`searching.enas.reinforce.PhaseBaseline`.

Fidelity notes: docs/fidelity/enas.md (NAS-Bench-201).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.nasbench201.cell import Cell
from searching.enas.reinforce import PhaseBaseline
from searching.oneshot.trainer import OneShotConfig, OneShotMethod


def autodl_cosine_lr(epoch: int, lr: float, lr_min: float, t_max: int, epochs: int) -> float:
    """AutoDL's ``CosineAnnealingLR`` (no warm-up) at ``epoch``: ``lr_min + (lr - lr_min) *
    (1 + cos(pi * epoch / t_max)) / 2`` while ``epoch < epochs``. With ENAS.config's
    ``T_max`` 10 of 310 epochs this is a wave of period 20 epochs, not a restart schedule."""
    if epoch >= epochs:
        return lr_min
    return lr_min + (lr - lr_min) * (1.0 + math.cos(math.pi * epoch / t_max)) / 2.0


def top1(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the batch whose top prediction is right (AutoDL's ``obtain_accuracy`` / 100)."""
    return float((logits.argmax(1) == y).sum()) / len(y)


def scalar(value) -> float:
    """A figure for the history: a float, or a (possibly differentiable) 0-dim tensor's value."""
    return float(value.detach()) if torch.is_tensor(value) else float(value)


class EnasNB201(OneShotMethod):
    """ENAS on NAS-Bench-201 (see the module doc)."""

    name = "enas"

    def __init__(self, controller: nn.Module, *, controller_lr: float = 1e-3,
                 controller_betas=(0.0, 0.999), controller_eps: float = 1e-3,
                 controller_grad_clip: float = 5.0, train_steps: int = 50,
                 num_aggregate: int = 20, entropy_weight: float = 1e-4,
                 baseline_decay: float = 0.99, baseline_scope: str = "phase",
                 reward_grad: bool = True, derive_samples: int = 10,
                 final_samples: int = 100, t_max: int = 10, epoch_valid: bool = True,
                 seed: int = 0, progress: bool = False) -> None:
        self.controller = controller
        self.hp = dict(controller_lr=float(controller_lr),
                       controller_betas=[float(b) for b in controller_betas],
                       controller_eps=float(controller_eps),
                       controller_grad_clip=float(controller_grad_clip),
                       train_steps=int(train_steps), num_aggregate=int(num_aggregate),
                       entropy_weight=float(entropy_weight),
                       baseline_decay=float(baseline_decay), baseline_scope=str(baseline_scope),
                       reward_grad=bool(reward_grad), derive_samples=int(derive_samples),
                       final_samples=int(final_samples), t_max=int(t_max),
                       epoch_valid=bool(epoch_valid))
        self.seed, self.progress = int(seed), bool(progress)
        self.baseline = PhaseBaseline(baseline_decay, baseline_scope)
        self.derived: Optional[Cell] = None
        #: The cell of highest whole-validation accuracy over the epochs (AutoDL's
        #: ``genotypes["best"]``, logged, not returned) and that accuracy.
        self.best_valid: Optional[Dict[str, Any]] = None

    def settings(self) -> Dict[str, Any]:
        c = self.controller
        return dict(self.hp, lstm_size=c.lstm_size, lstm_layers=c.lstm_layers,
                    tanh_constant=c.tanh_constant, temperature=c.temperature,
                    controller_params=sum(p.numel() for p in c.parameters()))

    def bind(self, net: nn.Module, w_optimizer: torch.optim.Optimizer,
             config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        self.controller.to(next(net.parameters()).device)
        hp = self.hp
        self.c_optimizer = torch.optim.Adam(self.controller.parameters(), lr=hp["controller_lr"],
                                            betas=tuple(hp["controller_betas"]),
                                            eps=hp["controller_eps"])
        self.generator = torch.Generator().manual_seed(self.seed + 5)

    # ------------------------------------------------------------------ schedule
    def epoch_lr(self, epoch: int, default: float) -> float:
        cfg = self.config
        return autodl_cosine_lr(epoch, cfg.lr, cfg.lr_min, self.hp["t_max"], cfg.epochs)

    def edge_weights(self, net: nn.Module) -> Dict[str, torch.Tensor]:
        return {}  # the controller has no per-edge weights; the supernet's alpha is unused

    # ------------------------------------------------------------------ shared phase
    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        x, y = train_batch
        with torch.no_grad():
            cell = self.controller.sample(self.generator).arch
        self.w_optimizer.zero_grad()
        logits = net(x, mode="fixed", arch=cell)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), self.config.grad_clip)
        self.w_optimizer.step()
        with torch.no_grad():
            return {"train_loss": loss.detach(),
                    "train_acc": (logits.argmax(1) == y).float().mean()}

    # ------------------------------------------------------------------ controller phase
    @staticmethod
    def _val_batch(feed):
        """One validation batch, augmented as the training data (AutoDL's ENAS gives its
        validation loader the training transform)."""
        x, y = feed.val_iter.next()
        return feed.search._augment(x, feed.aug_gen), y

    def controller_sample_loss(self, net: nn.Module, batch):
        """One controller sample's REINFORCE loss as AutoDL computes it (undivided), with
        its figures: ``(loss, sample, acc, reward, baseline)``."""
        hp = self.hp
        sample = self.controller.sample(self.generator)
        x, y = batch
        with torch.no_grad():
            acc = top1(net(x, mode="fixed", arch=sample.arch), y)
        entropy = sample.entropy if hp["reward_grad"] else sample.entropy.detach()
        reward = acc + hp["entropy_weight"] * entropy
        b = self.baseline(acc, reward)
        advantage = reward - b
        if not hp["reward_grad"] and torch.is_tensor(advantage):
            advantage = advantage.detach()
        loss = -sample.log_prob * advantage
        return loss, sample, acc, reward, b

    def train_controller(self, net: nn.Module, feed) -> Dict[str, Any]:
        hp = self.hp
        net.eval()
        self.controller.train()
        self.c_optimizer.zero_grad()
        self.baseline.begin_phase()
        total = hp["train_steps"] * hp["num_aggregate"]
        sums = {"controller_loss": 0.0, "val_acc": 0.0, "entropy": 0.0, "reward": 0.0,
                "baseline_mean": 0.0}
        norms = []
        from api.progress import progress

        bar = progress(total=total, desc="controller", unit="sample", leave=False,
                       disable=not self.progress or total == 0, dynamic_ncols=True)
        for k in range(total):
            loss, sample, acc, reward, b = self.controller_sample_loss(net, self._val_batch(feed))
            sums["controller_loss"] += scalar(loss)
            sums["val_acc"] += acc
            sums["entropy"] += scalar(sample.entropy)
            sums["reward"] += scalar(reward)
            sums["baseline_mean"] += scalar(b)
            (loss / hp["num_aggregate"]).backward()
            if (k + 1) % hp["num_aggregate"] == 0:
                norms.append(float(nn.utils.clip_grad_norm_(
                    self.controller.parameters(),
                    hp["controller_grad_clip"] if hp["controller_grad_clip"] > 0 else math.inf)))
                self.c_optimizer.step()
                self.c_optimizer.zero_grad()
            bar.update(1)
        bar.close()
        self.c_optimizer.zero_grad()  # a partial aggregate (none with AutoDL's counts) is dropped
        if not total:
            return {}
        out = {key: value / total for key, value in sums.items()}
        out["baseline"] = self.baseline.value
        if norms:
            out["controller_grad_norm"] = sum(norms) / len(norms)
        return out

    # ------------------------------------------------------------------ derivation
    def best_of(self, net: nn.Module, feed, n: int):
        """AutoDL's ``get_best_arch``: ``n`` samples, each scored on its own validation batch;
        the first of highest accuracy."""
        net.eval()
        self.controller.eval()
        best, best_acc = None, -1.0
        with torch.no_grad():
            for _ in range(max(1, n)):
                cell = self.controller.sample(self.generator).arch
                x, y = self._val_batch(feed)
                acc = top1(net(x, mode="fixed", arch=cell), y)
                if acc > best_acc:
                    best, best_acc = cell, acc
        return best, best_acc

    def valid_accuracy(self, net: nn.Module, feed, cell: Cell) -> float:
        """AutoDL's ``valid_func``: ``cell``'s accuracy over the whole validation half (in
        batches, augmented as the training data), the network in evaluation mode."""
        net.eval()
        data, bs = feed.data.arch, feed.batch_size
        correct = 0
        with torch.no_grad():
            for start in range(0, len(data), bs):
                x = feed.search._augment(data.x[start:start + bs], feed.aug_gen)
                y = data.y[start:start + bs]
                correct += int((net(x, mode="fixed", arch=cell).argmax(1) == y).sum())
        return correct / max(1, len(data))

    def epoch_end(self, net: nn.Module, feed, epoch: int) -> Dict[str, Any]:
        hp = self.hp
        record = self.train_controller(net, feed)
        cell, acc = self.best_of(net, feed, hp["derive_samples"])
        record["derive_acc"] = acc
        if hp["epoch_valid"]:
            full = self.valid_accuracy(net, feed, cell)
            record["derive_valid_acc"] = full
            if self.best_valid is None or full > self.best_valid["acc"]:
                self.best_valid = {"acc": full, "arch": cell.to_string(), "epoch": epoch + 1}
            record["best_valid_arch"] = self.best_valid["arch"]
            record["best_valid_acc"] = self.best_valid["acc"]
        if epoch + 1 == self.config.epochs:  # the search's answer: best of final_samples
            record["epoch_arch"] = cell.to_string()
            cell, acc = self.best_of(net, feed, hp["final_samples"])
            record["final_acc"] = acc
            if hp["epoch_valid"]:
                record["final_valid_acc"] = self.valid_accuracy(net, feed, cell)
        self.derived = cell
        return record

    def derive(self, net: nn.Module) -> Cell:
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
                "best_valid": self.best_valid}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.c_optimizer.load_state_dict(state["c_optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline.load_state_dict(state["baseline"])
        self.best_valid = state["best_valid"]
