"""The CNN proxy training of k candidates as one fused model (SPEC §23; issue 17). Off by default.

:func:`train_fused` gives each candidate of one AutoShrink step the result that
``CNNProxyEvaluator.evaluate(graph, seed)`` gives it alone -- same initialisation (its own seed),
same data order (its own generator), same Adam, same epoch-ending train-accuracy check, same BN
recalibration (its own ``seed + 1`` generator), same validation and early stops -- but runs the k
networks as one :class:`api.fused.FusedCandidates`. Members advance in lock-step batch by batch:

* a member whose epoch has ended (running train accuracy past the threshold) or whose training
  has stopped is *inactive*: it is left out of the loss, :class:`MemberAdam` does not update its
  weights, moments or step count, and its BN running statistics are restored after every
  train-mode forward, so its state is exactly what it was when it went inactive;
* each member has its own Adam step count (``torch.optim.Adam`` keeps one per tensor, which the
  members would share), so a member that sat out batches resumes with its own bias correction;
* validation runs when every active member has ended its epoch, on the shared validation batches.

Equal to separate training up to floating-point rounding (grouped convolutions sum in another
order); ``tests/test_fused_proxy.py`` checks it in float64 on CPU. In float32 the early-stop
decisions and accuracies may then differ where a separate run sits on a knife edge, so a fused
search is comparable to, not bit-identical with, an unfused one.

:class:`FusedExecutor` runs a search step's candidates this way (``ShrinkSearch(...,
executor=FusedExecutor())``) and falls back to separate training where it cannot fuse. Determinism
and resume with it: a fused search with the same seed gives the same results on the same machine;
a search killed mid-step and resumed retrains the step's remaining candidates as a smaller group,
and since members do not interact their results equal the uninterrupted run's up to rounding
(``tests/test_fused_proxy.py`` checks both in float64). The CNN search uses it with ``--fused``
(off by default); CPU only here (no channels_last, no autocast, no CUDA graphs), and its GPU speed
is unmeasured. Steps :func:`api.fused.unsupported` rejects are trained separately.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from api.complexity import count_macs, count_params
import numpy as np

from api.distributed import resolve_device
from api.fused import FusedCandidates, unsupported
from api.graph import CellGraph
from api.search.evaluator import Result, Task
from api.scoped import torch_state, torch_threads
from api.search.executors import Executor, InProcessExecutor, failure_result
from searching.cnn.proxy import (CNNProxyEvaluator, Diverged, next_accuracy_check,
                                 recalibrate_bn, stop_reason)


class MemberAdam:
    """Adam (``torch.optim.Adam``'s update, L2 weight decay) with a step count per member,
    updating only the members it is told are active. Every parameter's leading dimension is
    a multiple of M, member m owning the m-th block."""

    def __init__(self, param_groups, members: int, lr: float,
                 betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.groups = [(list(g["params"]), g["weight_decay"]) for g in param_groups]
        self.members, self.lr, self.betas, self.eps = members, lr, betas, eps
        self.steps = [0] * members
        self.state = {p: (torch.zeros_like(p), torch.zeros_like(p))
                      for ps, _ in self.groups for p in ps}

    def zero_grad(self) -> None:
        for ps, _ in self.groups:
            for p in ps:
                p.grad = None

    @torch.no_grad()
    def step(self, active: Sequence[int]) -> None:
        """One Adam step for the ``active`` members, vectorised over members (a fixed number
        of tensor ops per parameter, whatever k: no per-member loop on the device)."""
        b1, b2 = self.betas
        for m in active:
            self.steps[m] += 1
        M = self.members
        consts = {}
        for ps, wd in self.groups:
            for p in ps:
                if p.grad is None:
                    continue
                key = (p.dtype, p.device)
                if key not in consts:
                    on = torch.zeros(M, 1, dtype=torch.bool, device=p.device)
                    on[list(active)] = True
                    steps = torch.tensor(self.steps, dtype=p.dtype, device=p.device).view(M, 1)
                    # inactive members' rows may divide by zero (step 0): torch.where drops them
                    consts[key] = (on, self.lr / (1 - b1 ** steps), (1 - b2 ** steps).sqrt())
                on, step_size, bc2_sqrt = consts[key]
                pv, gv = p.view(M, -1), p.grad.view(M, -1)
                ea, es = (s.view(M, -1) for s in self.state[p])
                g = gv if wd == 0 else gv.add(pv, alpha=wd)
                ea.copy_(torch.where(on, ea.lerp(g, 1 - b1), ea))
                es.copy_(torch.where(on, es * b2 + (1 - b2) * g * g, es))
                denom = es.sqrt() / bc2_sqrt + self.eps
                pv.copy_(torch.where(on, pv - step_size * (ea / denom), pv))


class _BNKeeper:
    """Snapshots members' BN running statistics and writes them back."""

    def __init__(self, model: FusedCandidates) -> None:
        self.members = model.members
        self.buffers = [b for n, b in model.named_buffers()
                        if n.endswith(("running_mean", "running_var"))]

    def save(self, members: Sequence[int]):
        return {m: [b.view(self.members, -1)[m].clone() for b in self.buffers] for m in members}

    @torch.no_grad()
    def restore(self, saved) -> None:
        for m, values in saved.items():
            for b, v in zip(self.buffers, values):
                b.view(self.members, -1)[m].copy_(v)


def train_fused(evaluator: CNNProxyEvaluator, parent: CellGraph, graphs: Sequence[CellGraph],
                seeds: Sequence[int]) -> List[Result]:
    """Each graph's proxy result, as ``evaluator.evaluate(graph, seed)`` would give it."""
    cfg, spec = evaluator.config, evaluator.spec
    start = time.perf_counter()
    device = torch.device("cpu")
    fused, nets = FusedCandidates.from_members(parent, graphs, spec, seeds)
    size = (spec.in_channels, spec.image_size, spec.image_size)
    costs = [(count_macs(n, size), count_params(n)) for n in nets]
    del nets
    M = len(graphs)
    train, val = evaluator._device_data(device)
    dtype = next(fused.parameters()).dtype
    opt = MemberAdam(fused.param_groups(cfg.weight_decay), M, cfg.lr)
    bn = _BNKeeper(fused)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    recal_gens = [torch.Generator().manual_seed(s + 1) for s in seeds]
    running = list(range(M))           # members still training
    best = [(0.0, 0)] * M              # (best val accuracy, its epoch)
    epochs, curves = [0] * M, [[] for _ in range(M)]
    failed = {}
    for epoch in range(1, cfg.epochs + 1):
        if not running:
            break
        # ---- one epoch, members in lock-step; a member whose epoch ended sits out
        iters = {m: iter(train.batches(cfg.batch_size, gens[m])) for m in running}
        in_epoch = list(running)
        seen = {m: 0 for m in running}
        check_at = {m: 0 for m in running}
        total = {m: torch.zeros((), dtype=torch.float64) for m in running}
        correct = {m: 0 for m in running}
        fused.train()
        while in_epoch:
            batch = {}
            for m in list(in_epoch):
                nxt = next(iters[m], None)
                if nxt is None:
                    in_epoch.remove(m)
                else:
                    batch[m] = nxt
            if not in_epoch:
                break
            filler = batch[in_epoch[0]]
            x = torch.stack([batch.get(m, filler)[0] for m in range(M)]).to(dtype)
            y = torch.stack([batch.get(m, filler)[1] for m in range(M)])
            keep = bn.save([m for m in range(M) if m not in in_epoch])
            logits = fused(x)
            loss = fused.loss(logits, y, in_epoch)
            opt.zero_grad()
            loss.backward()
            opt.step(in_epoch)
            bn.restore(keep)
            with torch.no_grad():
                for m in list(in_epoch):
                    n = len(y[m])
                    total[m] += F.cross_entropy(logits[m], y[m]).double() * n
                    correct[m] += int((logits[m].argmax(1) == y[m]).sum())
                    seen[m] += n
                    if seen[m] >= check_at[m]:
                        if correct[m] > cfg.train_acc_stop * seen[m]:
                            in_epoch.remove(m)
                            continue
                        check_at[m] = next_accuracy_check(seen[m], correct[m],
                                                          cfg.train_acc_stop)
        train_loss = {m: float(total[m] / max(seen[m], 1)) for m in running}
        for m in list(running):
            if not math.isfinite(train_loss[m]):
                failed[m] = f"training loss is {train_loss[m]}"
                running.remove(m)
        if not running:
            break
        # ---- BN recalibration, each member on its own batches; the others' statistics kept
        keep = bn.save([m for m in range(M) if m not in running])
        if cfg.bn_recal_batches > 0:
            its = {m: iter(train.batches(cfg.batch_size, recal_gens[m])) for m in running}

            def recal_batches():
                while True:
                    xs = {m: next(its[m], None) for m in running}
                    if any(v is None for v in xs.values()):
                        return
                    first = xs[running[0]][0]
                    yield torch.stack([xs[m][0] if m in xs else first for m in range(M)]).to(dtype)
            recalibrate_bn(fused, recal_batches(), cfg.bn_recal_batches)
        bn.restore(keep)
        # ---- validation on the shared batches
        fused.eval()
        vloss = {m: 0.0 for m in running}
        vcorrect = {m: 0 for m in running}
        with torch.no_grad():
            for x, y in val.batches(cfg.val_batch_size):
                logits = fused(x.to(dtype))
                for m in running:
                    vloss[m] += F.cross_entropy(logits[m], y, reduction="sum").item()
                    vcorrect[m] += int((logits[m].argmax(1) == y).sum())
        for m in list(running):
            epochs[m] = epoch
            val_loss, val_acc = vloss[m] / len(val), vcorrect[m] / len(val)
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


def supergraph(graphs: Sequence[CellGraph]) -> CellGraph:
    """The union of the members' edges: a common parent of a step's candidates (the step's
    parent itself unless every candidate lost some edge of it), built from the tasks alone."""
    mask = np.zeros_like(graphs[0].mask)
    for g in graphs:
        mask |= g.mask
    return graphs[0].with_mask(mask).optimize()


class FusedExecutor(Executor):
    """Trains the tasks of one call (a search step's candidates) as one fused model.

    Falls back to ``fallback`` (one by one in this process by default) where fusing is not
    possible -- another evaluator than the CNN proxy, fewer than two tasks, a device other than
    the CPU (the fused trainer is CPU-only here), or what :func:`api.fused.unsupported` names --
    and says so once per reason. Results come when the whole group is done, so a search killed
    mid-step retrains that step's remaining candidates on resume (fused again: each member's
    result does not depend on the others, up to floating-point rounding).
    """

    def __init__(self, fallback: Optional[Executor] = None) -> None:
        self.fallback = fallback or InProcessExecutor()
        self._said = set()
        self.groups: List[int] = []  # the sizes of the groups trained fused, in order

    def _why_not(self, evaluator, tasks: Sequence[Task]) -> Optional[str]:
        if not isinstance(evaluator, CNNProxyEvaluator):
            return "not the CNN proxy evaluator"
        if len(tasks) < 2:
            return "fewer than two candidates"
        device = resolve_device(evaluator.config.device)
        if device.type != "cpu":
            return f"device {device.type} (fused training is CPU-only so far)"
        graphs = [t.graph for t in tasks]
        why = unsupported(supergraph(graphs), graphs, evaluator.spec)
        return f"fused candidates do not support {why}" if why else None

    def run(self, evaluator, tasks: Sequence[Task]) -> Iterator[Tuple[Task, Result]]:
        why = self._why_not(evaluator, tasks)
        if why:
            if why not in self._said and len(tasks) > 1:
                self._said.add(why)
                print(f"fused: training separately ({why})", file=sys.stderr)
            yield from self.fallback.run(evaluator, tasks)
            return
        graphs = [t.graph for t in tasks]
        self.groups.append(len(tasks))
        with torch_state(), torch_threads(evaluator.threads):
            try:
                results = train_fused(evaluator, supergraph(graphs), graphs,
                                      [t.seed for t in tasks])
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - a bug: fatal, as evaluate_safely
                results = [failure_result(exc) for _ in tasks]
        yield from zip(tasks, results)

    def close(self) -> None:
        self.fallback.close()


__all__ = ["MemberAdam", "train_fused", "supergraph", "FusedExecutor"]
