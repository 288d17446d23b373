"""The RNN proxy evaluator and the RNN cell search built on the shared shrink loop.

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

import argparse
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from api.distributed import resolve_device
from api.fingerprint import content_fingerprint
from api.errors import UserError
from api.graph import CellGraph
from api.search.evaluator import Evaluator, Result, TrainingFailure
from api.search.executors import resolve_threads
from api.search.objectives import RNNObjective
from searching.rnn.data import Corpus, batchify, get_batch
from searching.rnn.model import RNNModel, cell_flops, count_params
from searching.rnn.utils import draw_ops, embedding_matrix, load_w2v, parse_ops
from searching.runner import RUNTIME_FLAGS as SEARCH_RUNTIME_FLAGS
from searching.runner import open_search, run_search
from searching.search import CellSearch
from searching.shrink import ShrinkConfig, ShrinkSearch


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
class RNNTrainConfig:
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

    def __init__(self, data: LMData, emsize: int, nhid: int, config: RNNTrainConfig) -> None:
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
            curve.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"],
                          "train_loss": train_loss, "val_loss": val_loss,
                          "val_ppl": math.exp(val_loss),
                          "val_ppl_original_eval": math.exp(val_loss * as_original),
                          "seconds": seconds})
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
            if epoch - best_epoch >= cfg.patience:
                break
            if val_loss > cfg.overfit_ratio * train_loss:
                break
        if best_val >= cfg.diverge_loss:
            raise Diverged(f"best validation loss is {best_val:.4g} after {len(curve)} epochs "
                           f"(diverged: >= {cfg.diverge_loss:g})")
        result = Result(status="ok", metrics={
                            "perplexity": math.exp(best_val), "val_loss": best_val,
                            "perplexity_original_eval": math.exp(best_val * as_original)},
                        macs=cell_flops(graph, self.nhid), params=count_params(model),
                        seconds=time.perf_counter() - start, epochs=len(curve))
        result.curve = curve  # per-epoch figures (kept off the constructor on purpose)
        return result

    def _train_epoch(self, model: RNNModel, opt, params, train: torch.Tensor,
                     rng: np.random.Generator, gen) -> float:
        """One pass over the training stream; returns the token-weighted mean loss."""
        cfg = self.config
        model.train()
        hidden = model.init_hidden(cfg.batch_size)
        base_lr = opt.param_groups[0]["lr"]
        total, count, i = 0.0, 0, 0
        while i < train.size(0) - 2:
            bptt = cfg.bptt if rng.random() >= cfg.short_prob else cfg.bptt / 2.0
            seq_len = max(int(bptt), 1)
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


# ---------------------------------------------------------------------------------- search
# Flags that do not change results: excluded from the --resume settings check.
RUNTIME_FLAGS = SEARCH_RUNTIME_FLAGS | {"save", "data", "emb_path"}


def load_data(args: argparse.Namespace) -> LMData:
    """The corpus streams and the embedding init (w2v.pkl, or random with --emb_path none)."""
    corpus = Corpus(args.data)
    vectors = None
    if str(args.emb_path).lower() != "none":
        vectors = load_w2v(args.emb_path)
    emb = embedding_matrix(corpus.dictionary.idx2word, args.emsize, vectors, args.seed)
    return LMData(corpus.train, corpus.valid, corpus.ntokens, emb, corpus.dictionary.idx2word)


def train_config_from_args(args: argparse.Namespace) -> RNNTrainConfig:
    return RNNTrainConfig(
        epochs=args.epochs, lr=args.lr, clip=args.clip, batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size, bptt=args.bptt, wdecay=args.wdecay,
        patience=args.patience, dropout=args.dropout, dropouth=args.dropouth,
        dropoutx=args.dropoutx, dropouti=args.dropouti, dropoute=args.dropoute,
        device=args.device)


def initial_graph(args: argparse.Namespace, rng: np.random.Generator,
                  settings: Dict[str, Any]) -> CellGraph:
    """The starting DAG: complete (or --prob) on --nodes, ops from --ops or the seeded RNG."""
    ops = parse_ops(args.ops, args.nodes) if args.ops else draw_ops(args.nodes, rng)
    return CellGraph.random(args.nodes, ops, args.prob, rng, space="rnn", settings=settings)


def validate_args(args: argparse.Namespace) -> None:
    """Fill the size defaults and refuse out-of-range values with one clear line."""
    args.nhid = args.emsize if args.nhid is None else args.nhid
    args.nhidlast = args.emsize if args.nhidlast is None else args.nhidlast
    if args.nodes < 2:
        raise UserError(f"--nodes must be at least 2, got {args.nodes}")
    if args.max_steps < 1:
        raise UserError(f"--max_steps (k) must be at least 1, got {args.max_steps}")
    for flag in ("emsize", "epochs", "batch_size", "eval_batch_size", "patience"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.bptt < 2:
        raise UserError(f"--bptt must be at least 2, got {args.bptt}")
    if args.nhid != args.emsize or args.nhidlast != args.emsize:
        raise UserError(f"the decoder is tied to the embedding, so --nhid ({args.nhid}) and "
                        f"--nhidlast ({args.nhidlast}) must equal --emsize ({args.emsize})")
    for flag in ("lr", "clip"):
        if not getattr(args, flag) > 0:
            raise UserError(f"--{flag} must be positive, got {getattr(args, flag)}")
    if args.wdecay < 0:
        raise UserError(f"--wdecay must be >= 0, got {args.wdecay}")
    for flag in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
        if not 0.0 <= getattr(args, flag) < 1.0:
            raise UserError(f"--{flag} must be in [0, 1), got {getattr(args, flag)}")
    if not 0.0 < args.prob <= 1.0:
        raise UserError(f"--prob must be in (0, 1], got {args.prob}")
    if not 0.0 <= args.keep_fraction < 1.0:
        raise UserError(f"--keep_fraction must be in [0, 1), got {args.keep_fraction}")
    if args.ops:
        parse_ops(args.ops, args.nodes)


def build_components(args: argparse.Namespace):
    """Evaluator, objective, initial-graph maker and settings of an RNN search from its flags
    (shared by AutoShrink and the random-search baseline)."""
    validate_args(args)
    data = load_data(args)
    evaluator = RNNProxyEvaluator(data, args.emsize, args.nhid, train_config_from_args(args))
    saved = CellSearch.saved_settings(args.save) if args.resume else {}
    args.threads = evaluator.threads = resolve_threads(args.threads, args.workers,
                                                       saved.get("threads"), args.executor)
    settings = {k: v for k, v in vars(args).items() if k not in RUNTIME_FLAGS}
    net = {"space": "rnn", "emsize": args.emsize, "nhid": args.nhid,
           "nhidlast": args.nhidlast, "ntokens": data.ntokens}
    # The cost is floored at one edge: the empty cell is not free (see RNNObjective).
    objective = RNNObjective(args.efficiency_weight, min_flops=float(args.nhid) ** 2)
    return (evaluator, objective,
            lambda rng: initial_graph(args, rng, net), settings)


def make_search(args: argparse.Namespace) -> ShrinkSearch:
    """The AutoShrink RNN search (started or resumed) from parsed flags."""
    config = ShrinkConfig(k=args.max_steps, keep_fraction=args.keep_fraction, seed=args.seed)
    return open_search(ShrinkSearch, config, args, args.save, lambda: build_components(args))


def search_rnn(args: argparse.Namespace) -> CellGraph:
    """Run (or resume) an RNN cell search; returns graph-best."""
    return run_search(make_search(args), args.save)


# The reference cell of the benchmarks (SPEC section 15): 6 nodes, these node ops.
REFERENCE_OPS = ("input", "identity", "relu", "tanh", "identity", "identity")


def reference_candidate(data_dir: str, epochs: int = 10, device: str = "auto",
                        emb_path: Optional[str] = None, seed: int = 0,
                        drop_edge: Optional[Tuple[int, int]] = (0, 5)) -> Result:
    """Train the reference cell (complete, minus ``drop_edge`` unless None) on a PTB-format
    corpus at the paper's proxy settings; ``seed`` seeds the embedding init and training."""
    corpus = Corpus(data_dir)
    vectors = load_w2v(emb_path) if emb_path else None
    emb = embedding_matrix(corpus.dictionary.idx2word, 100, vectors, seed)
    data = LMData(corpus.train, corpus.valid, corpus.ntokens, emb)
    ev = RNNProxyEvaluator(data, 100, 100, RNNTrainConfig(epochs=epochs, device=device))
    graph = CellGraph.complete(6, list(REFERENCE_OPS), space="rnn")
    if drop_edge is not None:
        graph = graph.remove_edge(*drop_edge)
    return ev.evaluate(graph, seed)


def bench_candidate(data_dir: str, max_epochs: int = 10, device: str = "auto",
                    emb_path: Optional[str] = None, seed: int = 0) -> Tuple[float, bool, Result]:
    """Seconds of one reference candidate (bench/candidate.py): the reference cell minus edge
    0->5 (14 edges), penn_proxy, paper settings. A run capped below 10 epochs is projected to
    10 from its s/epoch."""
    epochs = min(10, max_epochs)
    result = reference_candidate(data_dir, epochs, device, emb_path, seed)
    projected = result.epochs == epochs < 10
    seconds = result.seconds / result.epochs * 10 if projected else result.seconds
    return seconds, projected, result


__all__ = ["Diverged", "REFERENCE_OPS", "bench_candidate", "reference_candidate",
           "original_eval_factor", "LMData", "RNNProxyEvaluator",
           "RNNTrainConfig", "build_components", "make_search", "search_rnn", "validate_args",
           "load_data"]
