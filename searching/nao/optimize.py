"""One NAO round on a measured pool: train the encoder-predictor-decoder, then move the best
architectures' embeddings uphill until enough unseen architectures come out.

Both follow the TF NAO-WS code (renqianluo/NAO ``NAO-WS/cnn/train_search.py``): targets are the
pool's accuracies min-max normalised (TF's error rates and descent, equivalently), training
uses symmetry augmentation and TF's optimizer step (:func:`clip_by_global_norm`), generation starts
from the pool's top 100 at step size 1, adding 1 per round, until ``n_new`` unseen architectures
are found or the step passes ``max_step``. "Unseen" is up to branch order
(:func:`searching.nao.pool.canonical`), not NAO's token comparison.

Fidelity notes: docs/fidelity/nao.md.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Set, Tuple

import torch

from api.scoped import torch_threads
from searching.nao.controller import NAOController, controller_lr
from searching.nao.pool import (arch_to_seq, canonical, pairwise_accuracy, seq_to_arch,
                                swap_branches)
from api.spaces.enas_micro import MicroArch
from api.spaces.enas_micro.arch import NODES


#: The controller runs on one intra-op thread, whatever the process uses. It is tiny (batches
#: of 100 sequences of 20-40 steps, 96 units): measured on the shared 2-core machine, a
#: training step took 6.1 s on 2 threads against 0.089 s on 1 (the threads spin waiting for
#: each other). One thread also makes its floats independent of the thread setting.
CONTROLLER_THREADS = 1


def normalise(values: Sequence[float]) -> Tuple[List[float], float, float]:
    """Min-max normalised ``values`` and (min, max); all equal -> all 0.5."""
    lo, hi = min(values), max(values)
    if hi - lo <= 0:
        return [0.5] * len(values), lo, hi
    return [(v - lo) / (hi - lo) for v in values], lo, hi


def train_controller(model: NAOController, optimizer: torch.optim.Optimizer,
                     archs: Sequence[MicroArch], targets: Sequence[float], epochs: int,
                     generator: torch.Generator, step: int, symmetry: bool = True,
                     progress=None) -> Dict[str, float]:
    """Train ``model`` ``epochs`` epochs on (``archs``, normalised ``targets``); ``step`` is
    the controller's global step count (for the lr decay). Returns the last epoch's mean
    loss / MSE / NLL, the pairwise accuracy of the predictions on the pool afterwards, and
    the new step count."""
    with torch_threads(CONTROLLER_THREADS):
        return _train_controller(model, optimizer, archs, targets, epochs, generator, step,
                                 symmetry, progress)


def _train_controller(model, optimizer, archs, targets, epochs, generator, step, symmetry,
                      progress) -> Dict[str, float]:
    cfg = model.config
    param = next(model.parameters())
    device = param.device
    seqs = [arch_to_seq(a) for a in archs]
    y_all = torch.tensor(list(targets), dtype=param.dtype, device=device)
    n = len(seqs)
    sums = {"loss": 0.0, "mse": 0.0, "nll": 0.0}
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator).tolist()
        if symmetry:
            nodes = torch.randint(NODES, (n, 2), generator=generator).tolist()
            batch_seqs = [swap_branches(seqs[i], *nodes[i]) for i in range(n)]
        else:
            batch_seqs = seqs
        # TF feeds the decoder the unswapped sequence (see ControllerConfig)
        feed_seqs = batch_seqs if cfg.swapped_decoder_inputs else seqs
        sums = {"loss": 0.0, "mse": 0.0, "nll": 0.0}
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            x = torch.tensor([batch_seqs[i] for i in idx], dtype=torch.long, device=device)
            feed = x if feed_seqs is batch_seqs else torch.tensor(
                [feed_seqs[i] for i in idx], dtype=torch.long, device=device)
            for group in optimizer.param_groups:
                group["lr"] = controller_lr(cfg, step)
            optimizer.zero_grad()
            loss, mse, nll = model.loss(x, y_all[idx], feed)
            loss.backward()  # the l2 term is in the loss, so it is clipped with it (TF)
            clip_by_global_norm(model.trainable(), cfg.grad_bound)
            optimizer.step()
            step += 1
            for key, value in (("loss", loss), ("mse", mse), ("nll", nll)):
                sums[key] += float(value.detach()) * len(idx)
        if progress is not None:
            progress.update(1)
    out = {f"controller_{k}": v / max(n, 1) for k, v in sums.items()}
    pred = _predict(model, archs)
    out["controller_pairwise_acc"] = pairwise_accuracy(list(targets), pred)
    out["controller_step"] = step
    return out


def clip_by_global_norm(params: Sequence[torch.Tensor], bound: float) -> None:
    """TF's ``tf.clip_by_global_norm``: every gradient times ``bound / max(norm, bound)``
    (torch's ``clip_grad_norm_`` divides by ``norm + 1e-6``)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or bound <= 0:
        return
    norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
    scale = bound / torch.clamp(norm, min=bound)
    for g in grads:
        g.mul_(scale)


def predict(model: NAOController, archs: Sequence[MicroArch]) -> List[float]:
    """The predictor's normalised accuracy of each architecture (dropout off)."""
    if not archs:
        return []
    with torch_threads(CONTROLLER_THREADS):
        return _predict(model, archs)


@torch.no_grad()
def _predict(model: NAOController, archs: Sequence[MicroArch]) -> List[float]:
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.tensor([arch_to_seq(a) for a in archs], dtype=torch.long, device=device)
    out = model.predict(x).tolist()
    model.train(was)
    return out


def generate_archs(model: NAOController, top: Sequence[MicroArch], n_new: int,
                   seen: Set[MicroArch], max_step: int = 100) -> Tuple[List[MicroArch], int]:
    """Up to ``n_new`` architectures not in ``seen``, by gradient ascent from ``top`` with a
    step growing by 1; returns them and the last step size used."""
    with torch_threads(CONTROLLER_THREADS):
        return _generate(model, top, n_new, seen, max_step)


def _generate(model, top, n_new, seen, max_step) -> Tuple[List[MicroArch], int]:
    new: List[MicroArch] = []
    if not len(top):
        return new, 0
    device = next(model.parameters()).device
    x = torch.tensor([arch_to_seq(a) for a in top], dtype=torch.long, device=device)
    outputs, grad = model.ascent(x)  # one encoding and gradient for every step size
    found = {canonical(a) for a in seen}
    lam = 0
    while len(new) < n_new and lam < max_step:
        lam += 1
        for seq in model.decode_moved(outputs, grad, float(lam)).tolist():
            arch = seq_to_arch(seq)
            if canonical(arch) not in found:
                found.add(canonical(arch))
                new.append(arch)
                if len(new) >= n_new:
                    break
    return new, lam
