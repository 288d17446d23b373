"""GDAS search (Dong & Yang, CVPR 2019) on NAS-Bench-201 or the DARTS/NASNet space.

    python searching/gdas/search.py --space nas-bench-201 --dataset cifar10 --data DIR --save DIR
    python searching/gdas/search.py --space darts [--frc] --dataset cifar10 --data DIR --save DIR

Defaults are AutoDL-Projects' (``configs/nas-benchmark/algos/GDAS.config``,
``configs/search-opts/GDAS-NASNet-CIFAR.config``: 250 epochs on both spaces). On the darts space
the supernet has AutoDL's pooling ops (no BN after them) and the cell is derived by AutoDL's
``NASNetworkGDAS.genotype`` rule. Outputs in --save: arch-best (+ .json, .txt), history.jsonl,
summary.json, search.log, args.json, plots, checkpoint.pt (--resume).

See docs/gdas.md.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from api.errors import UserError, run_cli
from searching.oneshot.cli import adopt_flags, add_search_flags, resolve_search_args, run_search, \
    supernet_kwargs

#: Per space: (C, cells flag default, batch size, epochs, weights' SGD weight decay).
DEFAULTS = {"nas-bench-201": dict(init_channels=16, layers=5, batch_size=64, epochs=250,
                                  weight_decay=5e-4),
            "darts": dict(init_channels=16, layers=6, batch_size=256, epochs=250,
                          weight_decay=5e-4)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="search.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frc", action="store_true",
                   help="darts space: GDAS-FRC (the fixed reduction cell; only the normal "
                        "cell is searched)")
    p.add_argument("--tau_max", type=float, default=10.0,
                   help="Gumbel-softmax temperature of the first epoch (linear decay)")
    p.add_argument("--tau_min", type=float, default=0.1,
                   help="temperature of the last epoch")
    p.add_argument("--unrolled", action="store_true", help=argparse.SUPPRESS)
    add_search_flags(p, "./search-gdas", {
        "epochs": "default 250 (both spaces)",
        "batch_size": "default 64 (nas-bench-201), 256 (darts)",
        "init_channels": "default 16",
        "layers": "default 5 (nas-bench-201), 6 = GDAS's N=2 (darts)",
        "weight_decay": "default 5e-4; SGD is Nesterov"})
    return p


def gdas_search(args: argparse.Namespace):
    from searching.gdas.method import GDAS

    if args.unrolled:
        raise UserError("--unrolled is DARTS-V2's second-order step; GDAS has none "
                        "(use searching/darts/train_search.py --unrolled)")
    if args.frc and args.space != "darts":
        raise UserError("--frc (GDAS's fixed reduction cell) needs --space darts")
    resolve_search_args(args, "GDAS", DEFAULTS)
    supernet = (supernet_kwargs(args) if args.space == "nas-bench-201" else
                supernet_kwargs(args, frc=bool(args.frc), lastact=True, pool_bn=False))
    method = GDAS(args.tau_max, args.tau_min, args.arch_learning_rate, args.arch_weight_decay,
                  seed=args.seed)  # derives with AutoDL's GDAS rule on the darts space
    return run_search(args, method, True, supernet)  # AutoDL's GDAS: Nesterov SGD


def main(argv: Optional[Sequence[str]] = None):
    parser = build_parser()
    return gdas_search(adopt_flags(parser.parse_args(argv), parser, argv))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
