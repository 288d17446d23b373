"""The AutoShrink RNN cell search from its flags: flags -> evaluator, objective, initial DAG.

The CLI is ``searching/rnn/train.py`` (its parser); the evaluator is
:class:`searching.rnn.proxy.RNNProxyEvaluator`; the loop is the shared shrink loop
(:mod:`searching.shrink`). The random-search baseline (``searching/random_search/random_search.py rnn``)
builds its candidates' training from the same :func:`build_components`.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Optional, Set

import numpy as np

from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.lm.data import Corpus
from api.lm.embedding import embedding_matrix, load_w2v
from api.runs.run_folder import adopt_recorded_flags, resolve_seed
from api.search.executors import resolve_threads
from api.search.objectives import RNNObjective
from api.spaces.autoshrink_rnn.space import draw_rnn_ops, parse_rnn_ops
from searching.rnn.proxy import LMData, RNNProxyEvaluator, RNNProxyTrainConfig
from searching.runner import RUNTIME_FLAGS as SEARCH_RUNTIME_FLAGS
from searching.fused import accelerate
from searching.runner import SearchComponents, open_search, run_search
from searching.cell_search import CellSearch
from searching.shrink import ShrinkConfig, ShrinkSearch

# Flags that do not change results: excluded from the --resume settings check.
RUNTIME_FLAGS = SEARCH_RUNTIME_FLAGS | {"save", "data", "emb_path", "fused", "cuda_graphs"}


def load_data(args: argparse.Namespace) -> LMData:
    """The corpus streams and the embedding init (w2v.pkl, or random with --emb_path none)."""
    corpus = Corpus(args.data)
    vectors = None
    if str(args.emb_path).lower() != "none":
        vectors = load_w2v(args.emb_path)
    emb = embedding_matrix(corpus.dictionary.idx2word, args.emsize, vectors, args.seed)
    return LMData(corpus.train, corpus.valid, corpus.ntokens, emb, corpus.dictionary.idx2word)


def train_config_from_args(args: argparse.Namespace) -> RNNProxyTrainConfig:
    return RNNProxyTrainConfig(
        epochs=args.epochs, lr=args.lr, clip=args.clip, batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size, bptt=args.bptt, wdecay=args.wdecay,
        patience=args.patience, dropout=args.dropout, dropouth=args.dropouth,
        dropoutx=args.dropoutx, dropouti=args.dropouti, dropoute=args.dropoute,
        device=args.device)


def initial_graph(args: argparse.Namespace, rng: np.random.Generator,
                  settings: Dict[str, Any]) -> CellGraph:
    """The starting DAG: complete (or --prob) on --nodes, ops from --ops or the seeded RNG."""
    ops = parse_rnn_ops(args.ops, args.nodes) if args.ops else draw_rnn_ops(args.nodes, rng)
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
        parse_rnn_ops(args.ops, args.nodes)
    if getattr(args, "cuda_graphs", False) and not getattr(args, "fused", False):
        raise UserError("--cuda_graphs captures the fused training step: add --fused")


def build_components(args: argparse.Namespace) -> SearchComponents:
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
    return SearchComponents(evaluator, objective, lambda rng: initial_graph(args, rng, net),
                            settings)


def make_search(args: argparse.Namespace) -> ShrinkSearch:
    """The AutoShrink RNN search (started or resumed) from parsed flags."""
    config = ShrinkConfig(k=args.max_steps, keep_fraction=args.keep_fraction, seed=args.seed)
    search = open_search(ShrinkSearch, config, args, args.save, lambda: build_components(args))
    return accelerate(search, args)


def search_rnn(args: argparse.Namespace, given: Optional[Set[str]] = None) -> CellGraph:
    """Run (or resume) an RNN cell search; returns graph-best. ``given``: the flags on the
    command line (a resumed search takes the others from its args.json)."""
    adopt_recorded_flags(args, args.save, given, "save")
    resolve_seed(args, args.save)
    return run_search(make_search(args), args.save)


__all__ = ["RUNTIME_FLAGS", "build_components", "initial_graph", "load_data", "make_search",
           "search_rnn", "train_config_from_args", "validate_args"]
