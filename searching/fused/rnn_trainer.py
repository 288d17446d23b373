"""The RNN proxy training of k candidates as one fused model. Off by default.

:func:`train_fused` gives each candidate of one AutoShrink RNN step the result that
``RNNProxyEvaluator.evaluate(graph, seed)`` gives it alone (own seed, sequence lengths, scaled
lr, gradient clipping, validation, lr drops and early stops) but runs the members as one
:class:`searching.fused.rnn_model.FusedRNNCandidates`, in lock-step batch by batch;
:func:`member_sgd_step` is per-member clipping and SGD vectorised over members. Equal to
separate training up to rounding (float64: ``tests/searching/fused/test_fused_rnn.py``);
:class:`~searching.fused.executor.FusedExecutor` uses it for ``searching/rnn/train.py --fused``.
Design and measurements: bench/README.md (fused candidates, CUDA graphs).
"""
from __future__ import annotations

import math
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from searching.fused.cuda_graph import GraphedStep
from api.train.distributed import resolve_device
from api.spaces.dag.graph import CellGraph
from searching.fused.rnn_model import FusedRNNCandidates
from api.spaces.autoshrink_rnn.model import count_params
from api.search.evaluator import Result
from api.search.executors import failure_result
from searching.rnn.proxy import (Diverged, RNNProxyEvaluator, epoch_record,
                                 original_eval_factor, proxy_result)


def why_not_fused(evaluator: RNNProxyEvaluator, graphs: Sequence[CellGraph]) -> str:
    """Why these candidates cannot be trained fused ('' when they can): the fused model has no
    dropout (the search trains without it)."""
    cfg = evaluator.config
    drops = [n for n in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")
             if getattr(cfg, n)]
    return f"fused RNN candidates have no dropout ({', '.join('--' + n for n in drops)})" \
        if drops else ""


@torch.no_grad()
def member_sgd_step(params: Sequence[torch.Tensor], members: Optional[torch.Tensor],
                    lrs: torch.Tensor, clip: float, weight_decay: float,
                    active: Optional[torch.Tensor] = None) -> None:
    """For each member in ``members`` (A,) (None: all): clip its gradient's total norm to
    ``clip`` and take an SGD step with its own lr (``lrs`` (A,)), as ``clip_grad_norm_`` and
    ``torch.optim.SGD`` do for a model of its own. Every parameter's dimension 0 is the
    member; the other members' rows are left alone, and so are those whose ``active`` (A,)
    entry is False (a fixed-shape step, for CUDA graphs: their rows are computed, not kept)."""
    A = params[0].size(0) if members is None else len(members)
    grads = [p.grad if members is None else p.grad.index_select(0, members) for p in params]
    sq = sum(g.reshape(A, -1).pow(2).sum(1) for g in grads)
    coef = (clip / (sq.sqrt() + 1e-6)).clamp_max(1.0)
    for p, g in zip(params, grads):
        shape = (-1,) + (1,) * (p.dim() - 1)
        d = g * coef.view(shape)
        rows = p if members is None else p.index_select(0, members)
        if weight_decay:
            d = d + weight_decay * rows
        new = rows - lrs.view(shape) * d
        if active is not None:
            new = torch.where(active.view(shape), new, rows)
        if members is None:
            p.copy_(new)
        else:
            p.index_copy_(0, members, new)


class StaticStep:
    """The fused training step at one fixed shape, for CUDA-graph capture (``--cuda_graphs``).

    ``step(rows (M, bptt), meta (M, 3))`` trains every member on its window ``rows`` (word
    positions in the stream, padded to bptt) with ``meta`` = (length, lr, active): all members
    are computed, and a member not in this batch (its epoch ended, or it stopped) is inactive:
    out of the loss and its weights kept (:func:`member_sgd_step`'s ``active``). The hidden
    state and the loss sums live in its own buffers, so a step reads nothing back and has no
    branch on the batch: one graph serves every batch of every epoch. It says ``capturable``
    and has ``zero_grad`` for :class:`searching.fused.cuda_graph.GraphedStep`, which captures it."""

    capturable = True

    def __init__(self, model: FusedRNNCandidates, params, train: torch.Tensor, clip: float,
                 weight_decay: float) -> None:
        self.model, self.params, self.train = model, params, train
        self.clip, self.weight_decay = clip, weight_decay
        M, B = model.members, train.size(1)
        self.hidden = params[0].new_zeros(M, B, model.nhid)
        self.total = torch.zeros(M, dtype=torch.float64, device=train.device)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def __call__(self, rows: torch.Tensor, meta: torch.Tensor) -> None:
        lengths, lrs, on = meta[:, 0].long(), meta[:, 1], meta[:, 2] > 0
        self.zero_grad()
        loss, new_hidden = self.model.losses(self.train[rows], self.train[rows + 1],
                                             self.hidden, lengths)
        torch.where(on, loss, 0.0).sum().backward()
        member_sgd_step(self.params, None, lrs, self.clip, self.weight_decay, active=on)
        with torch.no_grad():
            self.hidden.copy_(new_hidden)
            self.total += torch.where(on, loss.double() * (lengths * self.train.size(1)), 0.0)


def train_fused(evaluator: RNNProxyEvaluator, parent: CellGraph, graphs: Sequence[CellGraph],
                seeds: Sequence[int], cuda_graphs: bool = False) -> List[Result]:
    """Each graph's proxy result, as ``evaluator.evaluate(graph, seed)`` would give it
    (``cuda_graphs``: one fixed-shape step replayed as a CUDA graph)."""
    cfg = evaluator.config
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    model, nets = FusedRNNCandidates.from_members(parent, graphs, evaluator.build, seeds)
    params_count = [count_params(n) for n in nets]
    del nets
    model.to(device)
    params = list(model.parameters())
    train, valid = evaluator._device_batches(device)
    as_original = original_eval_factor(valid.size(0))
    M = len(graphs)
    graphed = None
    if cuda_graphs:  # one fixed-shape step, replayed as a CUDA graph (eager elsewhere)
        static = StaticStep(model, params, train, cfg.clip, cfg.wdecay)
        graphed = GraphedStep(static, static, device)
    rngs = [np.random.default_rng(s) for s in seeds]
    base_lr = [cfg.lr] * M
    running = list(range(M))
    best = [(math.inf, -1)] * M  # (best val loss, its epoch)
    curves: List[List[Dict]] = [[] for _ in range(M)]
    failed: Dict[int, Optional[str]] = {}  # member -> why it failed (None: it did not)
    for epoch in range(cfg.epochs):
        if not running:
            break
        train_loss = (_train_epoch(model, params, cfg, train, running, rngs, base_lr)
                      if graphed is None else
                      _train_epoch_static(graphed, cfg, train, running, rngs, base_lr))
        for m in list(running):
            if not math.isfinite(train_loss[m]):
                failed[m] = f"training loss is {train_loss[m]:.4g} (diverged)"
                running.remove(m)
        if not running:
            break
        val_loss = _evaluate(model, valid, cfg.bptt, running)
        seconds = time.perf_counter() - start
        for m in list(running):
            v = val_loss[m]
            if not math.isfinite(v):
                failed[m] = f"validation loss is {v:.4g} after epoch {epoch + 1}"
                running.remove(m)
                continue
            curves[m].append(epoch_record(epoch + 1, base_lr[m], train_loss[m], v, as_original,
                                          seconds))
            if v < best[m][0]:
                best[m] = (v, epoch)
            if cfg.lr_drops_after(epoch):
                base_lr[m] /= 10.0
            if cfg.stops_after(epoch, best[m][1], v, train_loss[m]):
                running.remove(m)
    # each member is credited an equal share of the group's wall time (as the fused CNN)
    seconds = (time.perf_counter() - start) / M
    results = []
    for m, g in enumerate(graphs):
        b = best[m][0]
        if m not in failed:
            failed[m] = cfg.divergence(b, len(curves[m]))
        if failed[m]:  # as the separate run reports it (failure_result of Diverged)
            result = failure_result(Diverged(failed[m]))
            result.seconds = seconds
        else:
            result = proxy_result(g, evaluator.nhid, params_count[m], b, as_original, seconds,
                                  curves[m])
        results.append(result)
    return results


def _plan_epoch(cfg, N: int, running: Sequence[int], rngs, base_lr) -> List[Dict]:
    """The epoch's batches, drawn on the host before any runs (the draws depend on nothing the
    device computes): per batch, the members in it, their window starts, lengths and lrs."""
    pos = {m: 0 for m in running}
    plan = []
    while True:
        members = [m for m in running if pos[m] < N - 2]
        if not members:
            return plan
        batch = {"members": members, "starts": [], "lens": [], "lrs": []}
        for m in members:
            seq_len = cfg.draw_seq_len(rngs[m])
            batch["starts"].append(pos[m])
            batch["lens"].append(min(seq_len, N - 1 - pos[m]))  # the last window is shorter
            batch["lrs"].append(base_lr[m] * seq_len / cfg.bptt)
            pos[m] += seq_len
        plan.append(batch)


def _upload_plan(plan: List[Dict], N: int, dtype, device) -> List[Tuple[torch.Tensor, ...]]:
    """Per batch (rows (A, T), members (A,), lengths (A,), lrs (A,)) on the device, from one
    host-to-device copy per kind for the whole epoch: a copy per batch would make the host
    wait for the device at every step. Rows past a member's length are padding (clamped into
    the stream, never in a loss)."""
    rows, members, lens, lrs = [], [], [], []
    for b in plan:
        T = max(b["lens"])
        rows += [min(i + t, N - 2) for i in b["starts"] for t in range(T)]
        members += b["members"]
        lens += b["lens"]
        lrs += b["lrs"]
    rows_d = torch.tensor(rows).to(device)
    ints = torch.tensor([members, lens]).to(device)
    lrs_d = torch.tensor(lrs, dtype=dtype).to(device)
    out, r, a = [], 0, 0
    for b in plan:
        A, T = len(b["members"]), max(b["lens"])
        out.append((rows_d[r:r + A * T].view(A, T), ints[0, a:a + A], ints[1, a:a + A],
                    lrs_d[a:a + A]))
        r, a = r + A * T, a + A
    return out


def _train_epoch(model: FusedRNNCandidates, params, cfg, train: torch.Tensor,
                 running: Sequence[int], rngs, base_lr) -> Dict[int, float]:
    """One pass of every running member over the training stream; their token-mean losses."""
    model.train()
    device, N, B = train.device, train.size(0), train.size(1)
    hidden = params[0].new_zeros(model.members, B, model.nhid)
    total = torch.zeros(model.members, dtype=torch.float64, device=device)
    count = {m: 0 for m in running}
    plan = _plan_epoch(cfg, N, running, rngs, base_lr)
    for batch, (rows, idx, lengths, lrs) in zip(plan, _upload_plan(plan, N, params[0].dtype,
                                                                    device)):
        every = len(batch["members"]) == model.members  # weights used as they are, no gather
        loss, new_hidden = model.losses(train[rows], train[rows + 1],
                                        hidden.index_select(0, idx), lengths,
                                        None if every else idx)
        model.zero_grad(set_to_none=False)
        loss.sum().backward()
        member_sgd_step(params, idx, lrs, cfg.clip, cfg.wdecay)
        hidden.index_copy_(0, idx, new_hidden.detach())
        total.index_add_(0, idx, loss.detach().double() * (lengths * B))
        for m, L in zip(batch["members"], batch["lens"]):
            count[m] += L * B
    values = total.tolist()  # the epoch's one read-back
    return {m: values[m] / max(count[m], 1) for m in running}


def _train_epoch_static(graphed, cfg, train: torch.Tensor, running: Sequence[int], rngs,
                        base_lr) -> Dict[int, float]:
    """:func:`_train_epoch` through a :class:`StaticStep` (``graphed.step``): every batch is
    padded to all members and to bptt, uploaded for the whole epoch in one copy per kind."""
    step: StaticStep = graphed.step
    step.model.train()
    M, N, B = step.model.members, train.size(0), train.size(1)
    plan = _plan_epoch(cfg, N, running, rngs, base_lr)
    rows = torch.zeros(len(plan), M, cfg.bptt, dtype=torch.long)
    meta = torch.zeros(len(plan), M, 3, dtype=step.params[0].dtype)
    meta[:, :, 0] = 1  # a length for the members not in a batch (their output is not read)
    count = {m: 0 for m in running}
    for b, batch in enumerate(plan):
        for m, i, L, lr in zip(batch["members"], batch["starts"], batch["lens"], batch["lrs"]):
            rows[b, m] = (torch.arange(cfg.bptt) + i).clamp_max(N - 2)
            meta[b, m] = torch.tensor([L, lr, 1.0])
            count[m] += L * B
    rows, meta = rows.to(train.device), meta.to(train.device)
    with torch.no_grad():
        step.hidden.zero_()
        step.total.zero_()
    for b in range(len(plan)):
        graphed(rows[b], meta[b])
    values = step.total.tolist()  # the epoch's one read-back
    return {m: values[m] / max(count[m], 1) for m in running}


@torch.no_grad()
def _evaluate(model: FusedRNNCandidates, data: torch.Tensor, bptt: int,
              running: Sequence[int]) -> Dict[int, float]:
    """Each running member's mean next-word loss over the validation stream (shared windows,
    hidden carried), as :meth:`RNNProxyEvaluator.evaluate_loss`."""
    model.eval()
    idx = torch.tensor(list(running), device=data.device)
    hidden = model.W0.new_zeros(len(running), data.size(1), model.nhid)
    total = torch.zeros(len(running), dtype=torch.float64, device=data.device)
    count = 0
    for i in range(0, data.size(0) - 1, bptt):
        L = min(bptt, data.size(0) - 1 - i)
        loss, hidden = model.losses(data[i:i + L], data[i + 1:i + 1 + L], hidden, None,
                                    None if len(running) == model.members else idx)
        total += loss.double() * (L * data.size(1))
        count += L * data.size(1)
    return dict(zip(running, (total / max(count, 1)).tolist()))


__all__ = ["StaticStep", "member_sgd_step", "train_fused", "why_not_fused"]
