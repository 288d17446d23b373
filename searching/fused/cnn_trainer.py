"""The CNN proxy training of k candidates as one fused model. Off by default.

:func:`train_fused` gives each candidate of one AutoShrink step the result that
``CNNProxyEvaluator.evaluate(graph, seed)`` gives it alone (own seed, data order, Adam step
count, BN recalibration and early stops) but runs them as one
:class:`searching.fused.cnn_model.FusedCandidates`, advancing in lock-step batch by batch;
inactive members are frozen by :class:`MemberAdam` and a BN restore. With ``--cuda_graphs`` the
fused step is replayed as CUDA graphs. Equal to separate training up to floating-point rounding
(float64: ``tests/searching/fused/test_fused_proxy.py``); :func:`why_not_fused` says when not.
Design and measurements: bench/README.md (fused candidates, CUDA graphs).
"""
from __future__ import annotations

import math
import time
from typing import List, Optional, Sequence, Tuple

import torch

from api.spaces.complexity import count_macs, count_params
from searching.fused.cuda_graph import GraphedStep
from api.train.distributed import resolve_device
from searching.fused.cnn_model import FusedCandidates, unsupported
from api.spaces.dag.graph import CellGraph
from api.search.evaluator import Result
from api.scoped import cudnn_benchmark
from api.search.executors import failure_result
from searching.fused.executor import supergraph
from searching.cnn.proxy import (CNNProxyEvaluator, Diverged, next_accuracy_check, recalibrate_bn,
                                 stop_reason)
from searching.fused.graphed_proxy import GRAPH_VAL_BATCH


def member_mask(members: Sequence[int], M: int, device) -> torch.Tensor:
    """(M, 1) bool on ``device``: True for the listed members (one host-to-device copy)."""
    on = torch.zeros(M, 1, dtype=torch.bool)
    on[list(members)] = True
    return on.to(device)


class MemberAdam:
    """Adam (``torch.optim.Adam``'s update, L2 weight decay) with a step count per member,
    updating only the active members. Every parameter's leading dimension is a multiple of M,
    member m owning the m-th block.

    Vectorised over members *and* parameters: each step concatenates all parameters and
    gradients into one ``(M, P)`` matrix, updates it with a fixed number of tensor ops and copies
    the result back, so a step launches a few dozen kernels whatever k and the network size.
    The step counts and the active mask live on the device and the mask is copied there only
    when the active set changes, so a step reads nothing back; with ``active=None`` it keeps
    the last set and is capturable as a CUDA graph (``capturable``, for searching/fused/cuda_graph.py).
    """

    capturable = True

    def __init__(self, param_groups, members: int, lr: float,
                 betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.decay = [], []          # decay: (first column, end column, wd)
        col = 0
        for g in param_groups:
            ps = list(g["params"])
            width = sum(p.numel() // members for p in ps)
            if g["weight_decay"] != 0 and width:
                self.decay.append((col, col + width, g["weight_decay"]))
            self.params += ps
            col += width
        self.sizes = [p.numel() // members for p in self.params]
        self.members, self.lr, self.betas, self.eps = members, lr, betas, eps
        p0 = self.params[0]
        self.exp_avg = torch.zeros(members, col, dtype=p0.dtype, device=p0.device)
        self.exp_avg_sq = torch.zeros_like(self.exp_avg)
        self.count = torch.zeros(members, 1, dtype=p0.dtype, device=p0.device)
        self.on = torch.ones(members, 1, dtype=torch.bool, device=p0.device)
        self.active: Tuple[int, ...] = tuple(range(members))

    @property
    def steps(self) -> List[int]:
        """Each member's step count (a host read)."""
        return [int(c) for c in self.count.view(-1).tolist()]

    def set_active(self, active: Sequence[int]) -> None:
        """The members the next steps update (copied to the device only when it changes)."""
        active = tuple(active)
        if active != self.active:
            self.active = active
            self.on.copy_(member_mask(active, self.members, self.on.device))

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: Optional[Sequence[int]] = None) -> None:
        """One Adam step for the ``active`` members (None: the last call's)."""
        if active is not None:
            self.set_active(active)
        b1, b2 = self.betas
        M, on = self.members, self.on
        self.count += on
        # inactive members' rows may divide by zero (step 0): torch.where drops them
        step_size = self.lr / (1 - b1 ** self.count)
        bc2_sqrt = (1 - b2 ** self.count).sqrt()
        views = [p.view(M, -1) for p in self.params]
        p = torch.cat(views, 1)
        g = torch.cat([q.grad.view(M, -1) if q.grad is not None else torch.zeros_like(v)
                       for q, v in zip(self.params, views)], 1)
        for a, b, wd in self.decay:
            g[:, a:b].add_(p[:, a:b], alpha=wd)
        ea, es = self.exp_avg, self.exp_avg_sq
        torch.where(on, ea.lerp(g, 1 - b1), ea, out=ea)
        torch.where(on, es * b2 + (1 - b2) * g * g, es, out=es)
        denom = es.sqrt() / bc2_sqrt + self.eps
        p = torch.where(on, p - step_size * (ea / denom), p)
        torch._foreach_copy_(views, list(p.split(self.sizes, 1)))


class _BNKeeper:
    """Snapshots all members' BN running statistics and writes back those of chosen members
    (a fixed number of ops, whichever members)."""

    def __init__(self, model: FusedCandidates) -> None:
        self.members = model.members
        self.buffers = [b for n, b in model.named_buffers()
                        if n.endswith(("running_mean", "running_var"))]
        self.saved: Optional[List[torch.Tensor]] = None

    @torch.no_grad()
    def save(self) -> None:
        if self.saved is None:
            self.saved = [torch.empty_like(b) for b in self.buffers]
        torch._foreach_copy_(self.saved, self.buffers)

    @torch.no_grad()
    def restore(self, live: torch.Tensor) -> None:
        """Members whose ``live`` row (an (M, 1) bool) is False get their saved statistics."""
        for b, v in zip(self.buffers, self.saved):
            bv = b.view(self.members, -1)
            torch.where(live, bv, v.view(self.members, -1), out=bv)


class FusedTrainStep:
    """One fused training step of the active members (forward, backward, :class:`MemberAdam`,
    the inactive members' BN statistics put back), each member's summed loss and correct count
    accumulated on the device: like the proxy's ``TrainStep``, it reads nothing back."""

    def __init__(self, model: FusedCandidates, opt: MemberAdam, amp: bool = False,
                 amp_cache: bool = True, always_keep_bn: bool = False) -> None:
        self.model, self.opt, self.amp, self.amp_cache = model, opt, amp, amp_cache
        # always_keep_bn: save and put back the inactive members' BN statistics at every step,
        # whatever the active set (a step captured as a CUDA graph must not branch on it)
        self.always_keep_bn = always_keep_bn
        device = opt.on.device
        M = model.members
        self.total_loss = torch.zeros(M, device=device)  # the default dtype, as TrainStep
        self.correct = torch.zeros(M, dtype=torch.long, device=device)
        self.bn = _BNKeeper(model)
        self.active = list(range(M))

    def reset(self) -> None:
        self.total_loss.zero_()
        self.correct.zero_()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """x: (M, B, C, H, W), y: (M, B); member m's batch in row m (rows of inactive members
        are ignored)."""
        some_out = self.always_keep_bn or len(self.active) < self.model.members
        self.opt.set_active(self.active)
        on = self.opt.on.view(-1)
        if some_out:
            self.bn.save()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp,
                            cache_enabled=self.amp_cache):
            logits = self.model(x)
            ce = self.model.member_losses(logits.float(), y)
        loss = torch.where(on, ce, 0).sum()  # a member's loss never mixes with another's
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step(self.active)
        if some_out:
            self.bn.restore(self.opt.on)
        n = y.shape[-1]
        self.total_loss += torch.where(on, ce.detach() * n, 0)
        self.correct += torch.where(on, (logits.argmax(-1) == y).sum(-1), 0)


def _orders(n: int, gens, members: Sequence[int], M: int, device) -> torch.Tensor:
    """(M, n) on ``device``: row m the order ``DeviceBatches.batches(.., gens[m])`` draws (a
    CPU ``randperm`` from the member's own generator, as the separate run draws it) for the
    listed members, 0..n-1 (unused) for the others. One host-to-device copy."""
    rows = [torch.randperm(n, generator=gens[m]) if m in members else torch.arange(n)
            for m in range(M)]
    return torch.stack(rows).to(device)


def train_fused(evaluator: CNNProxyEvaluator, parent: CellGraph, graphs: Sequence[CellGraph],
                seeds: Sequence[int], cuda_graphs: bool = False) -> List[Result]:
    """Each graph's proxy result, as ``evaluator.evaluate(graph, seed)`` would give it, on
    the evaluator's device (``cuda_graphs``: the fused step replayed as CUDA graphs)."""
    with cudnn_benchmark(evaluator.config.cudnn_benchmark):
        return _train_fused(evaluator, parent, graphs, seeds, cuda_graphs)


def _train_fused(evaluator: CNNProxyEvaluator, parent: CellGraph, graphs: Sequence[CellGraph],
                 seeds: Sequence[int], cuda_graphs: bool) -> List[Result]:
    cfg, spec = evaluator.config, evaluator.spec
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    fused, nets = FusedCandidates.from_members(parent, graphs, spec, seeds)  # built on the CPU
    size = (spec.in_channels, spec.image_size, spec.image_size)
    costs = [(count_macs(n, size), count_params(n)) for n in nets]
    del nets
    fused = fused.to(device)
    M = len(graphs)
    amp = device.type == "cuda" and cfg.cuda_bf16
    train, val = evaluator._device_data(device)
    n_train, B = len(train), cfg.batch_size
    dtype = next(fused.parameters()).dtype
    opt = MemberAdam(fused.param_groups(cfg.weight_decay), M, cfg.lr)
    step = FusedTrainStep(fused, opt, amp, amp_cache=not cuda_graphs, always_keep_bn=cuda_graphs)
    graphed = GraphedStep(step, opt, device) if cuda_graphs else None
    val_batch = cfg.val_batch_size
    if graphed is not None and graphed.graphed:
        val_batch = max(val_batch, GRAPH_VAL_BATCH)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    recal_gens = [torch.Generator().manual_seed(s + 1) for s in seeds]
    running = list(range(M))           # members still training
    best = [(0.0, 0)] * M              # (best val accuracy, its epoch)
    epochs, curves = [0] * M, [[] for _ in range(M)]
    failed = {}
    for epoch in range(1, cfg.epochs + 1):
        if not running:
            break
        # ---- one epoch, members in lock-step; a member whose epoch ended sits out. Members in
        # the epoch have all seen the same number of images; `correct` is read (one host sync
        # for all) only when some member reaches its next possible accuracy stop, as
        # CNNProxyEvaluator._train_epoch reads it.
        order = _orders(n_train, gens, running, M, device)
        step.active = list(running)
        seen, seen_at = 0, {}
        check_at = {m: 0 for m in running}
        step.reset()
        fused.train()
        for first in range(0, n_train, B):
            idx = order[:, first:first + B]
            if graphed is None:
                step(train.x[idx].to(dtype), train.y[idx])
            else:  # the mask is set outside the graph, which reads it on the device
                opt.set_active(step.active)
                graphed(train.x[idx].to(dtype), train.y[idx])
            seen += idx.shape[1]
            due = [m for m in step.active if seen >= check_at[m]]
            if due:
                counts = step.correct.tolist()
                for m in due:
                    if counts[m] > cfg.train_acc_stop * seen:
                        step.active.remove(m)
                        seen_at[m] = seen
                    else:
                        check_at[m] = next_accuracy_check(seen, counts[m], cfg.train_acc_stop)
            if not step.active:
                break
        seen_at.update({m: seen for m in step.active})
        seen_t = torch.tensor([max(seen_at.get(m, 1), 1) for m in range(M)])
        train_loss = dict(zip(range(M), (step.total_loss.cpu() / seen_t).tolist()))
        for m in list(running):
            if not math.isfinite(train_loss[m]):
                failed[m] = f"training loss is {train_loss[m]}"
                running.remove(m)
        if not running:
            break
        live = member_mask(running, M, device)
        # ---- BN recalibration, each member on its own batches; the others' statistics kept
        step.bn.save()
        if cfg.bn_recal_batches > 0:
            rorder = _orders(n_train, recal_gens, running, M, device)
            xs = (train.x[rorder[:, i:i + B]].to(dtype) for i in range(0, n_train, B))
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                recalibrate_bn(fused, xs, cfg.bn_recal_batches)
        step.bn.restore(live)
        # ---- validation on the shared batches, summed on the device and read once
        fused.eval()
        vloss = torch.zeros(M, dtype=torch.float64, device=device)
        vcorrect = torch.zeros(M, dtype=torch.long, device=device)
        with torch.no_grad():
            for x, y in val.batches(val_batch):
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    logits = fused(x.to(dtype)).float()
                vloss += fused.member_losses(logits, y, reduction="sum").double()
                vcorrect += (logits.argmax(-1) == y).sum(-1)
        vloss_l, vcorrect_l = vloss.tolist(), vcorrect.tolist()
        for m in list(running):
            epochs[m] = epoch
            val_loss, val_acc = vloss_l[m] / len(val), vcorrect_l[m] / len(val)
            curves[m].append({"epoch": epoch, "train_loss": train_loss[m], "val_loss": val_loss,
                              "val_acc": val_acc, "seconds": time.perf_counter() - start})
            if not math.isfinite(val_loss):
                failed[m] = f"validation loss is {val_loss} at epoch {epoch}"
                running.remove(m)
                continue
            if val_acc > best[m][0]:
                best[m] = (val_acc, epoch)
            if stop_reason(cfg, epoch, best[m][1], best[m][0], train_loss[m], val_loss):
                running.remove(m)
    # each member is credited an equal share of the group's wall time (candidates per hour
    # then reads right); its curve's "seconds" are the group's clock
    seconds = (time.perf_counter() - start) / M
    results = []
    for m in range(M):
        macs, params = costs[m]
        if m in failed:  # as the separate run reports it (failure_result of Diverged)
            result = failure_result(Diverged(failed[m]))
            result.seconds = seconds
            results.append(result)
        else:
            results.append(Result(status="ok", metrics={"accuracy": best[m][0]}, macs=macs,
                                  params=params, seconds=seconds, epochs=epochs[m],
                                  curve=curves[m]))
    return results


def why_not_fused(evaluator: CNNProxyEvaluator, graphs: Sequence[CellGraph]) -> str:
    """Why these candidates cannot be trained fused ('' when they can)."""
    why = unsupported(supergraph(graphs), graphs, evaluator.spec)
    return f"fused candidates do not support {why}" if why else ""


__all__ = ["MemberAdam", "FusedTrainStep", "member_mask", "train_fused", "why_not_fused"]
