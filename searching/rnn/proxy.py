"""The RNN proxy estimator: a candidate cell's perplexity after a short language-model training.

A candidate cell is trained from scratch as a small language model on the proxy corpus
(penn_proxy) with the paper's settings: SGD lr 20 scaled by seq_len/35, bptt 35 (17 with
probability 0.05), clip 0.25, batch 128 (eval 256), 10 epochs, lr / 10 after epochs E-4 and
E-2 (never after epoch 0, the original's short-run bug), stop after 4 epochs without a better
validation loss or when val loss > 3 x train loss. The result is the best validation
perplexity and the paper's FLOPs proxy (counted edges x nhid^2). A diverged candidate raises
:class:`Diverged`: a NaN/infinite loss at any point, or (the original's rule) a best
validation loss still at or above 30 nats when training ends. A transient spike of the
training loss is not a divergence: at lr 20 the loss can jump for a few batches and recover,
and the original kept training through it. The shared executor records a diverged candidate
as failed, and a failed candidate is never chosen.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from api.train.distributed import resolve_device
from api.runs.fingerprint import content_fingerprint
from api.spaces.dag.graph import CellGraph
from api.lm.data import batchify, get_batch
from api.spaces.autoshrink_rnn.model import RNNModel, cell_flops, count_params
from api.search.evaluator import Evaluator, Result, TrainingFailure


def original_eval_factor(rows: int) -> float:
    """The original's validation loss divided by ours, on a stream batchified to ``rows``.

    The original summed each window's mean loss times its length (``rows - 1`` targets in
    all) and divided by ``rows``, so it reported the loss times ``(rows - 1) / rows``. On
    penn_proxy at eval batch 256 (27 rows) that is 0.963: a true perplexity of 435 was
    logged as 347. Ours is the true token mean; this factor puts our figures next to the
    original's logs (``perplexity_original_eval``). The search's score uses the true one."""
    return (rows - 1) / rows


class Diverged(TrainingFailure):
    """The loss became NaN/infinite or reached the divergence threshold."""


@dataclass
class RNNProxyTrainConfig:
    epochs: int = 10
    lr: float = 20.0
    clip: float = 0.25
    batch_size: int = 128
    eval_batch_size: int = 256
    bptt: int = 35
    short_prob: float = 0.05       # probability of a half-length (bptt / 2) sequence
    wdecay: float = 0.0
    patience: int = 4              # epochs without a better val loss before stopping
    overfit_ratio: float = 3.0     # stop when val loss > ratio * train loss
    diverge_loss: float = 30.0     # a best val loss at or above this (nats) is a divergence
    dropout: float = 0.0
    dropouth: float = 0.0
    dropoutx: float = 0.0
    dropouti: float = 0.0
    dropoute: float = 0.0
    device: str = "cpu"            # runtime: not part of the results' identity

    def lr_drops_after(self, epoch: int) -> bool:
        """lr / 10 after (0-based) epochs E-4 and E-2, but never after epoch 0."""
        return epoch >= 1 and epoch in (self.epochs - 4, self.epochs - 2)

    def draw_seq_len(self, rng: np.random.Generator) -> int:
        """A training window's length: bptt, or half of it with probability ``short_prob``."""
        bptt = self.bptt if rng.random() >= self.short_prob else self.bptt / 2.0
        return max(int(bptt), 1)

    def stops_after(self, epoch: int, best_epoch: int, val_loss: float,
                    train_loss: float) -> bool:
        """Patience spent, or overfitting (val loss > ratio x train loss)."""
        return (epoch - best_epoch >= self.patience
                or val_loss > self.overfit_ratio * train_loss)

    def divergence(self, best_val: float, epochs: int) -> Optional[str]:
        """The original's rule at the end of training: a best val loss still at or above
        ``diverge_loss`` is a divergence (its message), else None."""
        if best_val >= self.diverge_loss:
            return (f"best validation loss is {best_val:.4g} after {epochs} epochs "
                    f"(diverged: >= {self.diverge_loss:g})")
        return None


def epoch_record(epoch: int, lr: float, train_loss: float, val_loss: float,
                 as_original: float, seconds: float) -> Dict[str, Any]:
    """One epoch of a candidate's curve (1-based ``epoch``)."""
    return {"epoch": epoch, "lr": lr, "train_loss": train_loss, "val_loss": val_loss,
            "val_ppl": math.exp(val_loss),
            "val_ppl_original_eval": math.exp(val_loss * as_original), "seconds": seconds}


def proxy_result(graph: CellGraph, nhid: int, params: int, best_val: float,
                 as_original: float, seconds: float, curve: List[Dict[str, Any]]) -> Result:
    """A trained candidate's result: its best val perplexity (and the original's figure for
    it), the paper's FLOPs proxy, its parameters and per-epoch curve."""
    result = Result(status="ok", metrics={
                        "perplexity": math.exp(best_val), "val_loss": best_val,
                        "perplexity_original_eval": math.exp(best_val * as_original)},
                    macs=cell_flops(graph, nhid), params=params, seconds=seconds,
                    epochs=len(curve))
    result.curve = curve  # per-epoch figures (kept off the constructor on purpose)
    return result


@dataclass
class LMData:
    """Token streams of the proxy corpus (CPU) and the embedding initialisation."""

    train: torch.Tensor
    valid: torch.Tensor
    ntokens: int
    embedding: Optional[torch.Tensor]  # (ntokens, emsize); None: random U(-0.1, 0.1)
    words: Optional[Sequence[str]] = None  # the vocabulary (id -> word), for the fingerprint


class RNNProxyEvaluator(Evaluator):
    """Trains candidate RNN cells as language models on token streams held on the device."""

    metric = "perplexity"
    higher_is_better = False
    curve_metric = "val_ppl"

    def __init__(self, data: LMData, emsize: int, nhid: int, config: RNNProxyTrainConfig) -> None:
        self.data, self.emsize, self.nhid, self.config = data, emsize, nhid, config
        self._batches = None  # built lazily on the worker's device, not pickled

    def describe(self) -> Dict[str, Any]:
        cfg = asdict(self.config)
        cfg.pop("device")
        d = self.data
        words = None if d.words is None else "\n".join(d.words)
        return {"emsize": self.emsize, "nhid": self.nhid, "ntokens": d.ntokens, "train": cfg,
                "corpus": content_fingerprint(d.train, d.valid),
                "vocabulary": content_fingerprint(words),
                "embeddings": content_fingerprint(d.embedding)}

    def _device_batches(self, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        if self._batches is None or self._batches[0].device != device:
            cfg = self.config
            self._batches = (batchify(self.data.train, cfg.batch_size, device),
                             batchify(self.data.valid, cfg.eval_batch_size, device))
        return self._batches

    def build(self, graph: CellGraph) -> RNNModel:
        cfg = self.config
        return RNNModel(graph, self.data.ntokens, self.emsize, self.nhid,
                        embedding=self.data.embedding, dropout=cfg.dropout,
                        dropouth=cfg.dropouth, dropoutx=cfg.dropoutx, dropouti=cfg.dropouti,
                        dropoute=cfg.dropoute)

    def evaluate(self, graph: CellGraph, seed: int) -> Result:
        cfg = self.config
        start = time.perf_counter()
        device = resolve_device(cfg.device)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)  # sequence lengths
        gen = torch.Generator(device=device).manual_seed(seed)  # dropout masks (if any)
        model = self.build(graph).to(device)
        params = list(model.parameters())
        opt = torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.wdecay)
        train, valid = self._device_batches(device)
        as_original = original_eval_factor(valid.size(0))
        best_val, best_epoch, curve = math.inf, -1, []
        for epoch in range(cfg.epochs):
            train_loss = self._train_epoch(model, opt, params, train, rng, gen)
            val_loss = self.evaluate_loss(model, valid)
            if not math.isfinite(val_loss):
                raise Diverged(f"validation loss is {val_loss:.4g} after epoch {epoch + 1}")
            seconds = time.perf_counter() - start
            curve.append(epoch_record(epoch + 1, opt.param_groups[0]["lr"], train_loss,
                                      val_loss, as_original, seconds))
            left = seconds / (epoch + 1) * (cfg.epochs - epoch - 1)
            self.report_epoch({"epoch": f"{epoch + 1}/{cfg.epochs}",
                               "val_ppl": f"{math.exp(val_loss):.1f}",
                               "s/epoch": f"{seconds / (epoch + 1):.1f}",
                               "candidate_eta": f"{int(left) // 60}:{int(left) % 60:02d}"})
            if val_loss < best_val:
                best_val, best_epoch = val_loss, epoch
            if cfg.lr_drops_after(epoch):
                for group in opt.param_groups:
                    group["lr"] /= 10.0
            if cfg.stops_after(epoch, best_epoch, val_loss, train_loss):
                break
        why = cfg.divergence(best_val, len(curve))
        if why:
            raise Diverged(why)
        return proxy_result(graph, self.nhid, count_params(model), best_val, as_original,
                            time.perf_counter() - start, curve)

    def _train_epoch(self, model: RNNModel, opt, params, train: torch.Tensor,
                     rng: np.random.Generator, gen) -> float:
        """One pass over the training stream; returns the token-weighted mean loss."""
        cfg = self.config
        model.train()
        hidden = model.init_hidden(cfg.batch_size)
        base_lr = opt.param_groups[0]["lr"]
        total, count, i = 0.0, 0, 0
        while i < train.size(0) - 2:
            seq_len = cfg.draw_seq_len(rng)
            for group in opt.param_groups:
                group["lr"] = base_lr * seq_len / cfg.bptt
            inputs, targets = get_batch(train, i, seq_len)
            loss, hidden = model.loss(inputs, targets, hidden.detach(),
                                      gen if model.training else None)
            value = loss.item()
            if not math.isfinite(value):
                raise Diverged(f"training loss is {value:.4g} (diverged)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            opt.step()
            total += value * targets.numel()
            count += targets.numel()
            i += seq_len
        for group in opt.param_groups:
            group["lr"] = base_lr
        return total / max(count, 1)

    @torch.no_grad()
    def evaluate_loss(self, model: RNNModel, data: torch.Tensor) -> float:
        """Mean next-word loss over a batchified stream (bptt windows, hidden carried)."""
        model.eval()
        hidden = model.init_hidden(data.size(1))
        total, count = 0.0, 0
        for i in range(0, data.size(0) - 1, self.config.bptt):
            inputs, targets = get_batch(data, i, self.config.bptt)
            loss, hidden = model.loss(inputs, targets, hidden)
            total += loss.item() * targets.numel()
            count += targets.numel()
        return total / max(count, 1)


__all__ = ["Diverged", "LMData", "RNNProxyEvaluator", "RNNProxyTrainConfig",
           "original_eval_factor"]
