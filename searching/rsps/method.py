"""RSPS, random search with parameter sharing (Li & Talwalkar, UAI 2019), as AutoDL-Projects
runs it on NAS-Bench-201 (``exps/NAS-Bench-201-algos/RANDOM-NAS.py``, ``TinyNetworkRANDOM``).

Each step trains the supernet's weights on one uniformly drawn cell (its ops alone run: the
supernet's ``fixed`` mode); the architecture batch the loader yields is not used. After each
epoch: the mean loss and accuracy of the evaluation data, each batch through a fresh uniform
cell (``valid_func``), then the best of ``select_num`` uniform cells, each scored on one
evaluation batch (``search_find_best``): that is the epoch's cell. After the last epoch a second
``search_find_best`` picks the cell the search returns.

Fidelity notes: docs/fidelity/rsps.md.
"""
from __future__ import annotations

from typing import Any, Dict

import torch.nn.functional as F
from torch import nn

from api.spaces import get_space
from searching.oneshot.sampling import (EvalLoader, UniformCells, evaluate_pass, grad_mask,
                                        pick_best, restore_grad_mask, zero_grads)
from searching.oneshot.trainer import OneShotConfig, OneShotMethod


class RSPS(OneShotMethod):
    name = "rsps"

    def __init__(self, select_num: int = 100, test_batch_size: int = 512,
                 unused_grads: str = "zero", seed: int = 0) -> None:
        self.select_num, self.test_batch_size = int(select_num), int(test_batch_size)
        self.unused_grads, self.seed = unused_grads, int(seed)
        self.derived = None
        self.loader = EvalLoader(None, self.test_batch_size, self.seed + 5)

    def settings(self) -> Dict[str, Any]:
        return {"select_num": self.select_num, "test_batch_size": self.test_batch_size,
                "unused_grads": self.unused_grads}

    def bind(self, net: nn.Module, w_optimizer, config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        self.cells = UniformCells(get_space(config.space), self.seed)

    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        x, y = train_batch  # AutoDL's search loader also yields an architecture batch: unused
        cell = self.cells.sample()
        zero_grads(self.w_optimizer_params(), self.unused_grads)
        logits = net(x, mode="fixed", arch=cell)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), self.config.grad_clip)
        self.w_optimizer.step()
        return {"train_loss": loss.detach(),
                "train_acc": (logits.detach().argmax(1) == y).float().mean()}

    def w_optimizer_params(self):
        return [p for group in self.w_optimizer.param_groups for p in group["params"]]

    def epoch_end(self, net: nn.Module, feed, epoch: int) -> Dict[str, Any]:
        loader = self.loader.over(feed.data.arch)
        out = evaluate_pass(net, loader, self.cells.sample)              # valid_func
        picks = [self.cells.sample() for _ in range(self.select_num)]  # search_find_best
        cell, acc, _ = pick_best(net, loader, picks)
        out["pick_acc"] = acc / 100.0
        if epoch + 1 == self.config.epochs:  # the final search_find_best: the search's cell
            out["epoch_arch"] = self.cells.space.format(cell)
            out["epoch_pick_acc"] = out["pick_acc"]
            picks = [self.cells.sample() for _ in range(self.select_num)]
            cell, acc, _ = pick_best(net, loader, picks)
            out["pick_acc"] = acc / 100.0
        self.derived = cell
        return out

    def derive(self, net: nn.Module):
        return self.derived

    def edge_weights(self, net: nn.Module):
        return {}  # no architecture parameters

    def state_dict(self) -> Dict[str, Any]:
        return {"cells": self.cells.state_dict(),
                "loader": self.loader.state_dict(),
                "grads": grad_mask(self.net)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.cells.load_state_dict(state["cells"])
        self.loader.load_state_dict(state["loader"])
        restore_grad_mask(self.net, state["grads"])
