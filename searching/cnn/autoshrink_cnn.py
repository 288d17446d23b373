"""AutoShrink CNN cell search (CLI).

    python searching/cnn/autoshrink_cnn.py --model_root ./autoshrink --nodes 8 --depth 3 \
        --width 1 --scale 1 2 4 --pool 1 2 2 --replicate 1 1 1 --protocol v3 --max_steps 10

Starts from the complete DAG on ``--nodes`` nodes and removes one edge per step, training
``--max_steps`` (k) candidates per step on a CIFAR-10 proxy (5,000 / 1,000 images). Writes
graph-best, graph-<ratio>, candidates.jsonl, logs and plots into ``--model_root``.
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence, Set

import numpy as np

from api.datasets import (PROXY_VAL_SOURCES, ProxyData, add_download_flag, load_images,
                          make_proxy)
from api.errors import UserError, run_cli
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.ops import PROTOCOLS, draw_ops
from api.runs.run_folder import adopt_recorded_flags, given_flags, resolve_seed
from api.search.executors import resolve_threads
from api.search.objectives import CNNObjective
from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig, proxy_spec_from_args
from searching.fused import accelerate
from searching.runner import RUNTIME_FLAGS as SEARCH_RUNTIME_FLAGS
from searching.runner import (SearchComponents, add_runtime_flags, add_search_flags,
                              open_search, run_search)
from searching.cell_search import CellSearch
from searching.shrink import ShrinkConfig, ShrinkSearch

# Flags that do not change results: excluded from the --resume settings check.
RUNTIME_FLAGS = SEARCH_RUNTIME_FLAGS | {"model_root", "data", "proxy_file", "cuda_bf16",
                                        "cuda_channels_last", "no_cudnn_benchmark",
                                        "cuda_graphs", "fused", "download"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("search space")
    g.add_argument("--nodes", type=int, default=8, help="nodes N of the cell DAG (N=8: 28 edges)")
    g.add_argument("--protocol", default="v3", choices=sorted(PROTOCOLS),
                   help="node op protocol (v3: SepConv3x3 and Conv1x1, half and half)")
    g.add_argument("--prob", type=float, default=1.0,
                   help="probability of each edge in the initial DAG (1.0: complete)")
    g = p.add_argument_group("proxy network")
    g.add_argument("--depth", type=int, default=3, help="number of stages")
    g.add_argument("--width", type=int, default=1, help="parallel cells per stage position")
    g.add_argument("--scale", type=float, nargs="+", default=[1, 2, 4],
                   help="node width multiplier of each stage (x16 channels)")
    g.add_argument("--pool", type=int, nargs="+", default=[1, 2, 2],
                   help="max-pool size at the first cell of each stage")
    g.add_argument("--replicate", type=int, nargs="+", default=[1, 1, 1],
                   help="cells per stage")
    g.add_argument("--channel_scale", type=float, default=1.0, help="global channel multiplier")
    g.add_argument("--activation", default="relu", choices=["relu", "swish"])
    add_search_flags(p, "model_root", "./autoshrink", keep_fraction=0.0, efficiency_weight=0.1,
                     score_help="score = acc - w * (log10(MACs) - 6)")
    g = p.add_argument_group("proxy data and training")
    g.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagefolder"])
    g.add_argument("--data", default="./data",
                   help="folder holding cifar-10-batches-py or an image folder with "
                        "train/<class>/ and val/<class>/")
    add_download_flag(g)
    g.add_argument("--proxy_file", default=None,
                   help="a proxy .npz written by make_cifar10_proxy.py (instead of sampling)")
    g.add_argument("--proxy_train", type=int, default=5000, help="proxy training images")
    g.add_argument("--proxy_val", type=int, default=1000, help="proxy validation images")
    g.add_argument("--proxy_val_source", default="test", choices=list(PROXY_VAL_SOURCES),
                   help="where the proxy's validation images come from: test (the paper's "
                        "code: CIFAR's test batch, an image folder's val/) or train (held out "
                        "from the train split, so the search never sees the test split)")
    g.add_argument("--image_size", type=int, default=32, help="proxy resolution (imagefolder)")
    g.add_argument("--epochs", type=int, default=20, help="max epochs per candidate")
    g.add_argument("--lr", type=float, default=4e-3, help="Adam learning rate (constant)")
    g.add_argument("--weight_decay", type=float, default=1e-5)
    g.add_argument("--batch_size", type=int, default=128)
    g.add_argument("--patience", type=int, default=5, help="epochs without val improvement")
    g.add_argument("--bn_recal_batches", type=int, default=10,
                   help="re-estimate BatchNorm statistics on this many train batches before "
                        "each validation (0: the original's running averages, which lag on "
                        "small proxies)")
    g.add_argument("--cuda_bf16", action="store_true",
                   help="bf16 autocast on CUDA (slower for the proxy nets on an H100: see "
                        "bench/README.md)")
    g.add_argument("--cuda_channels_last", action="store_true",
                   help="channels_last on CUDA (likewise slower there; CPU uses it where safe)")
    g.add_argument("--no_cudnn_benchmark", action="store_true",
                   help="skip cuDNN autotuning (saves its warm-up per worker process)")
    g.add_argument("--cuda_graphs", action="store_true",
                   help="capture each candidate's training step as CUDA graphs and validate in "
                        "large batches (GPU speed unmeasured; elsewhere the steps run eagerly "
                        "and one line says so)")
    g.add_argument("--fused", action="store_true",
                   help="train each step's candidates as one fused model (searching/cnn/"
                        "fused_proxy.py; on --device, CPU or CUDA; GPU speed unmeasured; "
                        "results equal the unfused ones up to float rounding; with --cuda_graphs "
                        "the fused step is captured too; falls back, saying so, where it cannot "
                        "fuse)")
    add_runtime_flags(p, g)
    return p


def validate_args(args: argparse.Namespace) -> None:
    if args.nodes < 2:
        raise UserError(f"--nodes must be at least 2, got {args.nodes}")
    if args.max_steps < 1:
        raise UserError(f"--max_steps (k) must be at least 1, got {args.max_steps}")
    lengths = {"--scale": len(args.scale), "--pool": len(args.pool),
               "--replicate": len(args.replicate)}
    if len(set(lengths.values())) != 1:
        got = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise UserError(f"--scale, --pool and --replicate need one value per stage ({got})")
    if args.depth != len(args.scale):
        raise UserError(f"--depth {args.depth} does not match the {len(args.scale)} stages given "
                        "by --scale/--pool/--replicate")
    if not 0.0 < args.prob <= 1.0:
        raise UserError(f"--prob must be in (0, 1], got {args.prob}")
    for flag in ("epochs", "batch_size", "proxy_train", "proxy_val", "image_size"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.bn_recal_batches < 0:
        raise UserError(f"--bn_recal_batches must be 0 (off) or more, got {args.bn_recal_batches}")
    if args.lr <= 0:
        raise UserError(f"--lr must be positive, got {args.lr}")


def load_proxy(args: argparse.Namespace) -> ProxyData:
    if args.proxy_file:
        return ProxyData.load(args.proxy_file)
    splits = load_images(args.dataset, args.data, args.image_size,
                         download=getattr(args, "download", False) or None)
    return make_proxy(splits, args.proxy_train, args.proxy_val, args.seed,
                      args.proxy_val_source)


def build_components(args: argparse.Namespace) -> SearchComponents:
    """Evaluator, objective, initial-graph maker and settings of a CNN search from its flags.

    Shared by AutoShrink and the random-search baseline so that both train candidates the
    same way.
    """
    validate_args(args)
    data = load_proxy(args)
    spec = proxy_spec_from_args(args, data.num_classes, image_size=data.train_x.shape[-1],
                                in_channels=data.train_x.shape[1])
    train_cfg = CNNProxyTrainConfig(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                                 batch_size=args.batch_size, patience=args.patience,
                                 bn_recal_batches=args.bn_recal_batches,
                                 cuda_bf16=args.cuda_bf16,
                                 cuda_channels_last=args.cuda_channels_last,
                                 cudnn_benchmark=not args.no_cudnn_benchmark,
                                 device=args.device)
    evaluator = CNNProxyEvaluator(data, spec, train_cfg)
    saved = CellSearch.saved_settings(args.model_root) if args.resume else {}
    args.threads = evaluator.threads = resolve_threads(args.threads, args.workers,
                                                       saved.get("threads"), args.executor)
    settings = {k: v for k, v in vars(args).items() if k not in RUNTIME_FLAGS}
    graph_settings = {"space": "cnn", "network": spec.to_dict(), "protocol": args.protocol}

    def initial(rng: np.random.Generator) -> CellGraph:
        ops = draw_ops(args.protocol, args.nodes, rng)
        return CellGraph.random(args.nodes, ops, args.prob, rng, space="cnn",
                                settings=graph_settings)

    return SearchComponents(evaluator, CNNObjective(args.efficiency_weight), initial, settings)


def make_search(args: argparse.Namespace) -> ShrinkSearch:
    """The AutoShrink CNN search (started or resumed) from parsed flags."""
    config = ShrinkConfig(k=args.max_steps, keep_fraction=args.keep_fraction, seed=args.seed)
    search = open_search(ShrinkSearch, config, args, args.model_root,
                         lambda: build_components(args))
    return accelerate(search, args)


def search_cnn(args: argparse.Namespace, given: Optional[Set[str]] = None) -> CellGraph:
    """Run (or resume) a CNN search; returns graph-best. ``given``: the flags on the command
    line (a resumed search takes the others from its args.json)."""
    adopt_recorded_flags(args, args.model_root, given, "model_root")
    resolve_seed(args, args.model_root)
    return run_search(make_search(args), args.model_root)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    search_cnn(parser.parse_args(argv), given_flags(parser, argv))


if __name__ == "__main__":
    run_cli(main)
