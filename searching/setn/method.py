"""SETN, the self-evaluated template network (Dong & Yang, ICCV 2019), as AutoDL-Projects runs
it on NAS-Bench-201 (``exps/NAS-Bench-201-algos/SETN.py``, ``TinyNetworkSETN``).

Each step: the weights train on one uniformly drawn cell (``dync_genotype(True)``: only its
ops run, the supernet's ``fixed`` mode; no gradient clipping), then the architecture
parameters take an Adam step on the architecture batch through every op weighted by
softmax(alpha) (``joint``: the supernet's ``softmax`` mode). After each epoch the evaluator
(``get_best_arch``) takes the ``select_num`` cells of highest probability under softmax(alpha)
(all 15,625 ranked, ties in enumeration order), scores each on one evaluation batch and keeps
the best; the picked cell's loss and accuracy over the whole evaluation data are logged
(``valid_func``). After the last epoch a second ``get_best_arch`` picks the cell the search
returns.

Fidelity notes: docs/fidelity/setn.md.
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from api.spaces import get_space
from searching.oneshot.sampling import (EvalLoader, UniformCells, evaluate_pass, grad_mask,
                                        pick_best, restore_grad_mask, zero_grads)
from searching.oneshot.trainer import OneShotConfig, OneShotMethod


def top_k_cells(alpha: torch.Tensor, k: int, space) -> List[Any]:
    """AutoDL's ``TinyNetworkSETN.return_topK``: every cell of the space, enumerated with the
    first edge's op varying slowest (``Structure.gen_all``), ranked by its log-probability
    under log_softmax(alpha) (summed edge by edge in alpha's precision, as its ``get_log_prob``
    does), highest first, ties kept in enumeration order; the first ``k`` (all when ``k`` is
    negative or at least the number of cells)."""
    with torch.no_grad():
        logp = torch.log_softmax(alpha.detach(), dim=-1).cpu()
    n_edges, n_ops = logp.shape
    archs = torch.tensor(list(itertools.product(range(n_ops), repeat=n_edges)))
    picked = logp[torch.arange(n_edges), archs]  # (cells, edges)
    total = picked[:, 0].clone()
    for e in range(1, n_edges):
        total = total + picked[:, e]
    order = np.argsort(-total.numpy(), kind="stable")
    if k < 0 or k >= len(order):
        k = len(order)
    return [space.arch_from_op_indices(archs[i].tolist()) for i in order[:k]]


class SETN(OneShotMethod):
    name = "setn"

    def __init__(self, select_num: int = 100, test_batch_size: int = 512,
                 arch_lr: float = 3e-4, arch_weight_decay: float = 1e-3,
                 unused_grads: str = "zero", seed: int = 0) -> None:
        self.select_num, self.test_batch_size = int(select_num), int(test_batch_size)
        self.arch_lr, self.arch_weight_decay = float(arch_lr), float(arch_weight_decay)
        self.unused_grads, self.seed = unused_grads, int(seed)
        self.derived = None
        self.loader = EvalLoader(None, self.test_batch_size, self.seed + 5)

    def settings(self) -> Dict[str, Any]:
        return {"select_num": self.select_num, "test_batch_size": self.test_batch_size,
                "arch_lr": self.arch_lr, "arch_weight_decay": self.arch_weight_decay,
                "unused_grads": self.unused_grads}

    def bind(self, net: nn.Module, w_optimizer, config: OneShotConfig) -> None:
        super().bind(net, w_optimizer, config)
        self.space = get_space(config.space)
        self.cells = UniformCells(self.space, self.seed)
        self.a_optimizer = torch.optim.Adam(net.arch_parameters(), lr=self.arch_lr,
                                            betas=(0.5, 0.999),
                                            weight_decay=self.arch_weight_decay)

    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        (xw, yw), (xa, ya) = train_batch, val_batch
        # 1. weights, on a uniformly drawn cell
        cell = self.cells.sample()
        zero_grads(net.parameters(), self.unused_grads)  # AutoDL: network.zero_grad()
        logits = net(xw, mode="fixed", arch=cell)
        loss = F.cross_entropy(logits, yw)
        loss.backward()
        if self.config.grad_clip > 0:  # off by default: AutoDL's SETN clips nothing
            nn.utils.clip_grad_norm_(net.parameters(), self.config.grad_clip)
        self.w_optimizer.step()
        # 2. architecture, every op weighted by softmax(alpha)
        zero_grads(net.parameters(), self.unused_grads)
        logits_a = net(xa, mode="softmax")
        loss_a = F.cross_entropy(logits_a, ya)
        loss_a.backward()
        self.a_optimizer.step()
        with torch.no_grad():
            return {"train_loss": loss.detach(),
                    "train_acc": (logits.argmax(1) == yw).float().mean(),
                    "arch_loss": loss_a.detach(),
                    "arch_acc": (logits_a.argmax(1) == ya).float().mean()}

    def select(self, net: nn.Module, loader: EvalLoader):
        """``get_best_arch``: the best of the ``select_num`` most probable cells."""
        cells = top_k_cells(net.arch_parameters()[0], self.select_num, self.space)
        return pick_best(net, loader, cells)

    def epoch_end(self, net: nn.Module, feed, epoch: int) -> Dict[str, Any]:
        loader = self.loader.over(feed.data.arch)
        cell, acc, rank = self.select(net, loader)
        out = {"pick_acc": acc / 100.0, "pick_rank": rank}
        out.update(evaluate_pass(net, loader, lambda: cell))  # valid_func of the picked cell
        if epoch + 1 == self.config.epochs:  # the final get_best_arch: the search's cell
            out = {f"epoch_{key}": value for key, value in out.items()}
            out["epoch_arch"] = self.space.format(cell)
            cell, acc, rank = self.select(net, loader)
            out.update(pick_acc=acc / 100.0, pick_rank=rank)
            out.update(evaluate_pass(net, loader, lambda: cell))
        self.derived = cell
        return out

    def derive(self, net: nn.Module):
        return self.derived

    def state_dict(self) -> Dict[str, Any]:
        return {"a_optimizer": self.a_optimizer.state_dict(), "cells": self.cells.state_dict(),
                "loader": self.loader.state_dict(),
                "grads": grad_mask(self.net)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self.cells.load_state_dict(state["cells"])
        self.loader.load_state_dict(state["loader"])
        restore_grad_mask(self.net, state["grads"])
