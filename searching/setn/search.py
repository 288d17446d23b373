"""SETN, the self-evaluated template network (Dong & Yang, ICCV 2019), on NAS-Bench-201.

    python searching/setn/search.py --space nas-bench-201 --dataset cifar10 --data DIR --save DIR

Defaults are AutoDL-Projects' (``configs/nas-benchmark/algos/SETN.config``,
``scripts-search/NAS-Bench-201-algos/SETN.sh``): 250 epochs, batch 64, Nesterov SGD 0.025
cosine to 0.001, weight decay 5e-4, no gradient clipping; alpha Adam 3e-4 (0.5, 0.999), weight
decay 1e-3; the best of the 100 most probable cells, each scored on one batch of 512
evaluation images. Outputs in --save: arch-best (+ .json, .txt), history.jsonl, summary.json,
search.log, args.json, plots, checkpoint.pt (--resume).

See docs/rsps_setn.md.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from api.errors import run_cli
from searching.oneshot.cli import adopt_flags, add_search_flags, resolve_search_args, \
    run_search, supernet_kwargs
from searching.rsps.search import add_sampling_flags, check_sampling_flags

#: AutoDL's SETN.config and SETN.sh (C=16, N=5).
DEFAULTS = {"nas-bench-201": dict(init_channels=16, layers=5, batch_size=64, epochs=250,
                                  weight_decay=5e-4)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="search.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sampling_flags(p)
    add_search_flags(p, "./search-setn", {
        "epochs": "default 250",
        "batch_size": "default 64",
        "init_channels": "default 16",
        "layers": "default 5",
        "weight_decay": "default 5e-4; SGD is Nesterov"})
    p.set_defaults(grad_clip=0.0)  # AutoDL's SETN step clips nothing
    for action in p._actions:
        if action.dest == "grad_clip":
            action.help = ("clip the gradient norm of the weight step (default 0: none, as "
                           "AutoDL's SETN)")
    return p


def setn_search(args: argparse.Namespace):
    from searching.setn.method import SETN

    check_sampling_flags(args)
    resolve_search_args(args, "SETN", DEFAULTS)
    method = SETN(args.select_num, args.test_batch_size, args.arch_learning_rate,
                  args.arch_weight_decay, args.unused_grads, seed=args.seed)
    return run_search(args, method, True, supernet_kwargs(args))  # AutoDL: Nesterov SGD


def main(argv: Optional[Sequence[str]] = None):
    parser = build_parser()
    return setn_search(adopt_flags(parser.parse_args(argv), parser, argv))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
