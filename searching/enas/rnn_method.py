"""ENAS's RNN cell search as a method of the one weight-sharing trainer (text variant).

An epoch, as carpedm20/ENAS-pytorch ``trainer.py``: ``shared_max_step`` shared steps
(:meth:`EnasRNN.step`: the controller samples a cell, the shared LM takes one SGD step on the
next training window), then ``controller_max_step`` REINFORCE steps (:meth:`EnasRNN.epoch_end`:
reward ``reward_c / ppl + entropy_coeff * H`` on the next validation window, EMA baseline
:class:`searching.enas.reinforce.EMABaseline`), then :meth:`EnasRNN.derive` keeps the best of
``derive_num_sample`` samples on the first validation window.

Fidelity notes (baseline decay, entropy bonus, reward forward, shared steps per epoch):
docs/fidelity/enas.md.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

import torch
from torch import nn

from api.lm.data import get_batch
from api.lm.softmax_loss import linear_cross_entropy
from searching.enas.reinforce import EMABaseline, controller_lr, make_controller_optimizer, \
    policy_loss
from searching.enas.rnn_controller import RNNController
from searching.oneshot.trainer import OneShotConfig, OneShotMethod


def shared_lr(epoch: int, lr: float, decay: float, decay_after: float) -> float:
    """The shared lr of (0-based) ``epoch``: see :meth:`EnasRNN.epoch_lr`."""
    if epoch - 1 < decay_after:
        return lr
    return lr * decay ** (epoch - decay_after)


def next_valid_pos(pos: int, bptt: int, rows: int):
    """carpedm20's next reward window: ``(pos + bptt) mod (rows - 1)``, and whether that
    wrapped to a new pass over the validation text."""
    new = (pos + bptt) % max(rows - 1, 1)
    return new, new < pos


@dataclass
class EnasRNNSettings:
    """The controller's and the schedule's settings (carpedm20 ``config.py`` names)."""

    num_blocks: int = 12
    controller_hid: int = 100
    softmax_temperature: float = 5.0
    tanh_c: float = 2.5
    controller_optim: str = "adam"
    controller_lr: float = 3.5e-4
    controller_lr_cosine: bool = False
    controller_lr_max: float = 0.05
    controller_lr_min: float = 1e-3
    controller_grad_clip: float = 0.0
    controller_max_step: int = 2000
    entropy_coeff: float = 1e-4
    ema_baseline_decay: float = 0.95
    reward_c: float = 80.0
    derive_num_sample: int = 100
    max_epoch: int = 150
    shared_decay: float = 0.96
    shared_decay_after: float = 15
    bptt: int = 35


class EnasRNN(OneShotMethod):
    name = "enas-rnn"

    def __init__(self, settings: EnasRNNSettings, seed: int, progress: bool = False) -> None:
        self.s, self.seed, self.progress = settings, int(seed), progress
        self.hidden: Optional[torch.Tensor] = None
        self.controller_steps = 0
        self.last_sample = None
        self.derive_ppl: Optional[float] = None
        self.derive_seconds: Optional[float] = None
        self.valid_source: Optional[torch.Tensor] = None

    def settings(self) -> Dict[str, Any]:
        return asdict(self.s)

    def bind(self, net: nn.Module, w_optimizer: torch.optim.Optimizer,
             config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        s = self.s
        device = net.decoder_weight.device
        gen = torch.Generator().manual_seed(self.seed + 7)
        with torch.random.fork_rng(devices=[]):  # the controller's init leaves no trace
            torch.manual_seed(self.seed + 5)
            self.controller = RNNController(s.num_blocks, s.controller_hid,
                                            s.softmax_temperature, s.tanh_c).to(device)
        self.generator = gen
        self.c_optimizer = make_controller_optimizer(self.controller.parameters(),
                                                     s.controller_optim, s.controller_lr)
        self.baseline = EMABaseline(s.ema_baseline_decay)
        self.weights = [p for p in net.weight_parameters() if p.requires_grad]

    def epoch_lr(self, epoch: int, default: float) -> float:
        """carpedm20 ``Trainer.train``: after epoch ``k >= shared_decay_after`` ends, the lr
        becomes ``lr * decay^(k - decay_after + 1)``; so epoch ``e`` trains at
        ``lr * decay^(e - decay_after)`` once ``e - 1 >= decay_after``, else at ``lr``."""
        return shared_lr(epoch, default, self.s.shared_decay, self.s.shared_decay_after)

    def epoch_start(self, epoch: int) -> Dict[str, Any]:
        self.hidden = None
        return {}

    def _sample(self, n: int = 1, grad: bool = False):
        with torch.set_grad_enabled(grad):
            return self.controller.sample(n, self.generator)

    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        x, y = train_batch
        arcs, _, _ = self._sample()
        net.set_arc(arcs[0])
        self.last_sample = arcs[0]
        if self.hidden is None:
            self.hidden = net.init_hidden(x.size(1))
        self.w_optimizer.zero_grad(set_to_none=True)
        out, hidden = net(x, self.hidden)
        loss = linear_cross_entropy(out.reshape(-1, net.nhid), net.decoder_weight,
                                    net.decoder_bias, y.reshape(-1))
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.weights, self.config.grad_clip)
        self.w_optimizer.step()
        self.hidden = hidden.detach()
        return {"train_loss": loss.detach()}

    @torch.no_grad()
    def _valid_loss(self, net: nn.Module, x, y, hidden):
        out, hidden = net(x, hidden)
        loss = linear_cross_entropy(out.reshape(-1, net.nhid), net.decoder_weight,
                                    net.decoder_bias, y.reshape(-1))
        return float(loss), hidden

    def epoch_end(self, net: nn.Module, feed, epoch: int) -> Dict[str, Any]:
        """The controller's steps (see the module doc); per-epoch means for the history."""
        import time

        from api.progress import progress

        start = time.perf_counter()
        s, source = self.s, feed.data.search
        total_steps = s.max_epoch * s.controller_max_step
        was_training = net.training
        net.eval()
        self.controller.train()
        self.valid_source = source  # derive's validation window
        hidden = net.init_hidden(source.size(1))
        pos, lr = 0, None
        sums = {"reward": 0.0, "entropy": 0.0, "reward_ppl": 0.0, "controller_loss": 0.0,
                "advantage": 0.0}
        bar = progress(total=s.controller_max_step, desc=f"controller {epoch + 1}", unit="step",
                   leave=False, disable=not self.progress, dynamic_ncols=True)
        for _ in range(s.controller_max_step):
            arcs, log_prob, entropy = self._sample(grad=True)
            net.set_arc(arcs[0])
            x, y = get_batch(source, pos, s.bptt)
            loss_value, hidden = self._valid_loss(net, x, y, hidden)
            ppl = math.exp(min(loss_value, 700.0))
            ent = float(entropy.detach().sum())
            reward = s.reward_c / ppl + s.entropy_coeff * ent
            adv = self.baseline.advantage(reward)
            lr = controller_lr(self.controller_steps, total_steps, s.controller_lr,
                               s.controller_lr_cosine, s.controller_lr_max, s.controller_lr_min)
            for group in self.c_optimizer.param_groups:
                group["lr"] = lr
            self.c_optimizer.zero_grad(set_to_none=True)
            loss = policy_loss(log_prob, adv)
            loss.backward()
            if s.controller_grad_clip > 0:
                nn.utils.clip_grad_norm_(self.controller.parameters(), s.controller_grad_clip)
            self.c_optimizer.step()
            self.controller_steps += 1
            for key, v in (("reward", reward), ("entropy", ent),
                           ("reward_ppl", ppl), ("controller_loss", float(loss.detach())),
                           ("advantage", adv)):
                sums[key] += v
            self.last_sample = arcs[0]
            pos, wrapped = next_valid_pos(pos, s.bptt, source.size(0))
            if wrapped:  # carpedm20: a new pass over the validation text, a fresh state
                hidden = net.init_hidden(source.size(1))
            bar.update(1)
        bar.close()
        net.train(was_training)
        n = max(s.controller_max_step, 1)
        return {**{k: v / n for k, v in sums.items()}, "baseline": self.baseline.value,
                "controller_lr": lr,
                "controller_steps": self.controller_steps,
                "controller_seconds": time.perf_counter() - start,
                "last_sample": " ".join(map(str, self.last_sample or ()))}

    @torch.no_grad()
    def derive(self, net: nn.Module):
        """Sample ``derive_num_sample`` cells, keep the best on the first validation window."""
        import time

        start = time.perf_counter()
        source = self.valid_source
        was_training = net.training
        net.eval()
        arcs, _, _ = self._sample(self.s.derive_num_sample)
        x, y = get_batch(source, 0, self.s.bptt)
        best, best_loss = None, math.inf
        for arc in arcs:
            net.set_arc(arc)
            loss, _ = self._valid_loss(net, x, y, net.init_hidden(source.size(1)))
            if loss < best_loss:
                best, best_loss = arc, loss
        net.set_arc(best)
        net.train(was_training)
        self.derive_ppl = math.exp(min(best_loss, 700.0))
        self.derive_seconds = time.perf_counter() - start
        return best

    def edge_weights(self, net: nn.Module) -> Dict[str, torch.Tensor]:
        return {}

    def state_dict(self) -> Dict[str, Any]:
        return {"controller": self.controller.state_dict(),
                "c_optimizer": self.c_optimizer.state_dict(),
                "baseline": self.baseline.state_dict(), "generator": self.generator.get_state(),
                "hidden": self.hidden, "controller_steps": self.controller_steps,
                "last_sample": list(self.last_sample) if self.last_sample else None}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.c_optimizer.load_state_dict(state["c_optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self.generator.set_state(state["generator"])
        self.hidden = state["hidden"]
        self.controller_steps = int(state["controller_steps"])
        self.last_sample = tuple(state["last_sample"]) if state["last_sample"] else None


__all__ = ["EnasRNN", "EnasRNNSettings", "next_valid_pos", "shared_lr"]
