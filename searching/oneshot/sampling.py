"""What the sampling weight-sharing methods share (RSPS and SETN on NAS-Bench-201): a uniform
draw of one op per edge, AutoDL-Projects' evaluation loader over the architecture half, the
accuracy of one sampled cell on one batch, and PyTorch < 2.0's ``zero_grad``.

AutoDL-Projects evaluates candidate cells on ``valid_loader``: the architecture half without
augmentation, ``test_batch_size`` (512) images a batch, the last batch partial, a new shuffle
each time the loader is iterated afresh. :class:`EvalLoader` reproduces that from its own
checkpointed generator. :class:`UniformCells` draws each edge's op with Python's
``random.choice`` in edge order, as AutoDL's ``random_genotype`` / ``dync_genotype(True)``
do: a ``random.Random`` seeded as AutoDL's global one gives its very cells.

Fidelity notes: docs/fidelity/rsps.md, docs/fidelity/setn.md.
"""
from __future__ import annotations

import random
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: ``--unused_grads``: what a step's ``zero_grad`` leaves on a weight its cell does not use.
UNUSED_GRADS = ("zero", "none")


class UniformCells:
    """Cells with each edge's op drawn uniformly (``random.choice`` per edge, in edge order)."""

    def __init__(self, space, seed: int) -> None:
        self.space = space
        self.ops = list(range(len(space.ops)))
        self.edges = len(space.edges)
        self.rng = random.Random(seed)

    def sample(self):
        return self.space.arch_from_op_indices([self.rng.choice(self.ops)
                                                for _ in range(self.edges)])

    def state_dict(self) -> Dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"version": version, "internal": list(internal), "gauss": gauss}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.rng.setstate((int(state["version"]), tuple(int(v) for v in state["internal"]),
                           state["gauss"]))


class EvalLoader:
    """AutoDL's ``valid_loader`` over the architecture half: each :meth:`passes` call is a fresh
    ``iter(valid_loader)`` (a new permutation; batches of ``batch_size``, the last one
    partial), and a pass that runs out starts a new one, as AutoDL's ``search_find_best`` /
    ``get_best_arch`` do (``except: loader_iter = iter(xloader)``)."""

    def __init__(self, data, batch_size: int, seed: int) -> None:
        self.data, self.batch_size = data, int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)

    def over(self, data) -> "EvalLoader":
        """This loader over ``data`` (a method builds it before the trainer's data exist, so
        that its state can be checkpointed and restored from the start)."""
        self.data = data
        return self

    def one_pass(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator).to(self.data.y.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.data.x[idx], self.data.y[idx]

    def batches(self, count: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """``count`` batches, starting a new pass whenever one runs out."""
        it = self.one_pass()
        for _ in range(count):
            try:
                yield next(it)
            except StopIteration:
                it = self.one_pass()
                yield next(it)

    def state_dict(self) -> Dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def top1_percent(logits: torch.Tensor, y: torch.Tensor) -> float:
    """AutoDL's ``obtain_accuracy`` top-1: correct x (100 / batch) in float32."""
    correct = (logits.argmax(dim=1) == y).float().sum()
    return float(correct.mul_(100.0 / y.numel()))


@torch.no_grad()
def pick_best(net: nn.Module, loader: EvalLoader, cells: List[Any]) -> Tuple[Any, float, int]:
    """AutoDL's ``search_find_best`` / ``get_best_arch``: each cell on the next evaluation
    batch (eval mode), the first of the highest top-1 wins. Returns (cell, its accuracy in
    percent, its position in ``cells``)."""
    net.eval()
    accs = [top1_percent(net(x, mode="fixed", arch=cell), y)
            for cell, (x, y) in zip(cells, loader.batches(len(cells)))]
    best = int(np.argmax(accs))
    return cells[best], accs[best], best


@torch.no_grad()
def evaluate_pass(net: nn.Module, loader: EvalLoader, cell_of_batch) -> Dict[str, float]:
    """AutoDL's ``valid_func``: one pass over the evaluation data in eval mode, batch k through
    ``cell_of_batch()`` (RSPS: a fresh uniform cell per batch; SETN: the picked cell).
    Returns the image-weighted mean loss and accuracy (a fraction)."""
    net.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in loader.one_pass():
        logits = net(x, mode="fixed", arch=cell_of_batch())
        loss_sum += float(F.cross_entropy(logits, y)) * y.numel()
        correct += int((logits.argmax(dim=1) == y).sum())
        n += y.numel()
    return {"val_loss": loss_sum / n, "val_acc": correct / n}


def zero_grads(params, mode: str) -> None:
    """A step's ``zero_grad``: ``zero`` as PyTorch < 2.0 (the version AutoDL-Projects'
    searches ran on): a gradient once created stays, zeroed, so SGD's weight decay and
    momentum keep moving a weight its sampled cell does not use; ``none``: PyTorch >= 2.0's
    default, such a weight has no gradient and SGD skips it."""
    for p in params:
        if p.grad is not None:
            if mode == "none":
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.zero_()


def grad_mask(net: nn.Module) -> List[bool]:
    """Which parameters hold a gradient (checkpointed: under ``zero`` it decides which weights
    the next SGD step moves)."""
    return [p.grad is not None for p in net.parameters()]


def restore_grad_mask(net: nn.Module, mask: Optional[List[bool]]) -> None:
    for p, has in zip(net.parameters(), mask or []):
        p.grad = torch.zeros_like(p) if has else None
