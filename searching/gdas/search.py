"""GDAS search (Dong & Yang, CVPR 2019) on NAS-Bench-201 or the DARTS/NASNet space.

    python searching/gdas/search.py --space nas-bench-201 --dataset cifar10 --data DIR --save DIR
    python searching/gdas/search.py --space darts [--frc] --dataset cifar10 --data DIR --save DIR

Defaults are AutoDL-Projects' (SPEC §18): NAS-Bench-201 C=16, N=5, batch 64, 250 epochs
(AutoDL's algos/GDAS.config says 240; the NAS-Bench-201 paper and SPEC say 250); NASNet space
C=16, N=2 (6 cells: NASNetworkGDAS's 3N, reductions after N and 2N), BN-ReLU head, batch 256,
250 epochs (configs/search-opts/GDAS-NASNet-CIFAR.config). Weights SGD 0.025 cosine to 0.001,
Nesterov 0.9, wd 5e-4, clip 5; alphas Adam 3e-4 (0.5, 0.999) wd 1e-3; tau 10 -> 0.1. Outputs
in --save: arch-best (+ .json, .txt), history.jsonl, summary.json, search.log, args.json,
plots, checkpoint.pt (--resume).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from typing import Optional, Sequence

from api.distributed import resolve_device
from api.errors import UserError, run_cli

SPACES = ("nas-bench-201", "darts")
#: Per space: (C, cells flag default, batch size, epochs).
DEFAULTS = {"nas-bench-201": dict(init_channels=16, layers=5, batch_size=64, epochs=250),
            "darts": dict(init_channels=16, layers=6, batch_size=256, epochs=250)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="search.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", required=True, help="nas-bench-201 or darts (the NASNet space)")
    p.add_argument("--frc", action="store_true",
                   help="darts space: GDAS-FRC (the fixed reduction cell; only the normal "
                        "cell is searched)")
    p.add_argument("--dataset", default="cifar10",
                   help="cifar10, cifar100 or imagefolder (DIR/train/<class>/*)")
    p.add_argument("--data", default="./data", help="folder holding the dataset")
    p.add_argument("--save", default="./search-gdas", help="output folder")
    p.add_argument("--epochs", type=int, default=None, help="default: 250 (both spaces)")
    p.add_argument("--batch_size", type=int, default=None,
                   help="default: 64 (nas-bench-201), 256 (darts)")
    p.add_argument("--seed", type=int, default=-1, help="-1: a random seed, printed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--resume", action="store_true", help="continue the search in --save")
    p.add_argument("--force", action="store_true",
                   help="with --resume: continue even if the flags differ from the saved search")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no_plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--train_size", type=int, default=0,
                   help="use N training images in all (class-balanced, seeded; halved into "
                        "weights / architecture halves); 0: the whole training split")
    p.add_argument("--benchmark_file", default=None,
                   help="the NAS-Bench-201 table (nb201.csv.gz): look up each epoch's cell")
    p.add_argument("--init_channels", type=int, default=None, help="C (default 16)")
    p.add_argument("--layers", "--N", dest="layers", type=int, default=None,
                   help="nas-bench-201: N cells per stage (default 5); darts: cells in all "
                        "(default 6 = GDAS's N=2)")
    p.add_argument("--track_running_stats", type=int, choices=(0, 1), default=1,
                   help="nas-bench-201: the cells' BN keep running statistics (AutoDL's BN1)")
    p.add_argument("--tau_max", type=float, default=10.0,
                   help="Gumbel-softmax temperature of the first epoch (linear decay)")
    p.add_argument("--tau_min", type=float, default=0.1,
                   help="temperature of the last epoch")
    p.add_argument("--arch_learning_rate", type=float, default=3e-4,
                   help="Adam lr of the architecture parameters (betas 0.5, 0.999)")
    p.add_argument("--arch_weight_decay", type=float, default=1e-3,
                   help="Adam weight decay of the architecture parameters")
    p.add_argument("--learning_rate", type=float, default=0.025,
                   help="weights: SGD lr of the first epoch (Nesterov momentum 0.9)")
    p.add_argument("--learning_rate_min", type=float, default=0.001,
                   help="weights: the cosine schedule's floor")
    p.add_argument("--weight_decay", type=float, default=5e-4, help="weights: SGD weight decay")
    p.add_argument("--grad_clip", type=float, default=5.0,
                   help="clip the gradient norm of the weight step (0: no clipping)")
    p.add_argument("--checkpoint_minutes", type=float, default=10.0,
                   help="also checkpoint mid-epoch after a step when this many minutes have "
                        "passed since the last save (0: every step; -1: epochs only)")
    p.add_argument("--unrolled", action="store_true", help=argparse.SUPPRESS)
    return p


def _saved_seed(save: str) -> int:
    try:
        with open(os.path.join(save, "args.json"), encoding="utf-8") as f:
            return int(json.load(f)["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def gdas_search(args: argparse.Namespace):
    from searching.gdas.method import GDAS
    from searching.oneshot.trainer import OneShotConfig, OneShotSearch

    if args.unrolled:
        raise UserError("--unrolled is DARTS-V2's second-order step; GDAS has none "
                        "(use searching/darts/train_search.py --unrolled)")
    if args.space not in SPACES:
        raise UserError(f"unknown space {args.space!r} for GDAS (choose {', '.join(SPACES)})")
    if args.frc and args.space != "darts":
        raise UserError("--frc (GDAS's fixed reduction cell) needs --space darts")
    defaults = DEFAULTS[args.space]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs and --batch_size must be at least 1")
    if args.seed < 0 and args.resume:  # the resumed search's own seed
        args.seed = _saved_seed(args.save)
    if args.seed < 0:
        args.seed = random.randint(1, 100000)
        print(f"seed: {args.seed}")
    if args.space == "nas-bench-201":
        supernet = dict(C=args.init_channels, N=args.layers, affine=False,
                        track_running_stats=bool(args.track_running_stats))
    else:
        try:
            from api.spaces.darts import supernet as _  # noqa: F401
        except ImportError:
            raise UserError("the darts space's supernet is not available yet in this "
                            "checkout: use --space nas-bench-201") from None
        supernet = dict(C=args.init_channels, layers=args.layers, frc=bool(args.frc),
                        lastact=True)
    config = OneShotConfig(
        space=args.space, dataset=args.dataset, data=args.data, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, train_size=args.train_size,
        lr=args.learning_rate, lr_min=args.learning_rate_min, momentum=0.9, nesterov=True,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip, supernet=supernet)
    method = GDAS(args.tau_max, args.tau_min, args.arch_learning_rate, args.arch_weight_decay,
                  seed=args.seed)
    search = OneShotSearch(args.save, config, method, resolve_device(args.device),
                           progress=not args.quiet, plots=not args.no_plots,
                           benchmark_file=args.benchmark_file, args=vars(args),
                           checkpoint_seconds=60.0 * args.checkpoint_minutes)
    arch = search.run(resume=args.resume, force=args.force)
    print(f"searched architecture: {arch.text}")
    return arch


def main(argv: Optional[Sequence[str]] = None):
    return gdas_search(build_parser().parse_args(argv))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
