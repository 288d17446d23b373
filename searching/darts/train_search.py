"""DARTS search (Liu et al., ICLR 2019), V1 (first order) or V2 (``--unrolled``), on the
DARTS CNN space or NAS-Bench-201.

    python searching/darts/train_search.py [--unrolled] --space darts --dataset cifar10 --data DIR --save DIR
    python searching/darts/train_search.py [--unrolled] --space nas-bench-201 --dataset cifar10 --data DIR --save DIR

Defaults: quark0/darts ``cnn/train_search.py`` on the darts space (each epoch's genotype derived
before its training, as quark0 logs it), AutoDL-Projects' DARTS-V1/V2 on NAS-Bench-201
(derived after it; the weight step's clip spans the alphas' gradient too; V1 takes the weight
step before the architecture step). Outputs in --save: arch-best (+ .json, .txt),
history.jsonl, summary.json, search.log, args.json, plots, checkpoint.pt (--resume).

See docs/darts.md.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from api.errors import UserError, run_cli
from searching.oneshot.cli import adopt_flags, add_search_flags, resolve_search_args, run_search, \
    supernet_kwargs

#: Per space: the defaults of the flags left at None, and whether SGD is Nesterov.
DEFAULTS = {
    "darts": dict(init_channels=16, layers=8, batch_size=64, epochs=50, weight_decay=3e-4,
                  derive_at="epoch_start"),
    "nas-bench-201": dict(init_channels=16, layers=5, batch_size=64, epochs=50,
                          weight_decay=5e-4, derive_at="epoch_end"),
}
NESTEROV = {"darts": False, "nas-bench-201": True}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_search.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unrolled", action="store_true",
                   help="DARTS-V2: the second-order architecture gradient (default: V1)")
    p.add_argument("--derive_at", choices=("epoch_start", "epoch_end"), default=None,
                   help="each epoch's reported genotype (history, arch-best) is derived before "
                        "its training (quark0 logs it so: default on darts) or after it "
                        "(AutoDL: default on nas-bench-201)")
    p.add_argument("--step_order", choices=("arch_first", "weights_first"), default=None,
                   help="which step of a search step comes first; default: weights_first for "
                        "V1 on nas-bench-201 (AutoDL's DARTS-V1), arch_first otherwise "
                        "(quark0, AutoDL's DARTS-V2)")
    p.add_argument("--unroll_nesterov", action="store_true",
                   help="nas-bench-201 V2: the virtual step is the Nesterov optimizer's own "
                        "next step (AutoDL unrolls with the heavy-ball formula)")
    add_search_flags(p, "./search-darts", {
        "epochs": "default 50", "batch_size": "default 64", "init_channels": "default 16",
        "layers": "default 8 (darts), 5 (nas-bench-201)",
        "weight_decay": "default 3e-4 (darts), 5e-4 (nas-bench-201)"})
    return p


def darts_search(args: argparse.Namespace):
    from searching.darts.method import DARTS

    resolve_search_args(args, "DARTS", DEFAULTS)
    if args.step_order is None:
        args.step_order = ("weights_first" if args.space == "nas-bench-201" and not args.unrolled
                           else "arch_first")
    if args.unroll_nesterov and not (args.unrolled and NESTEROV[args.space]):
        raise UserError("--unroll_nesterov changes DARTS-V2's virtual step under Nesterov SGD: "
                        "it needs --unrolled and --space nas-bench-201 (the darts space's SGD "
                        "is heavy-ball, which DARTS's formula unrolls exactly)")
    method = DARTS(args.unrolled, args.arch_learning_rate, args.arch_weight_decay,
                   derive_at=args.derive_at, clip_alphas=args.space == "nas-bench-201",
                   unroll_nesterov=args.unroll_nesterov, step_order=args.step_order)
    return run_search(args, method, NESTEROV[args.space], supernet_kwargs(args))


def main(argv: Optional[Sequence[str]] = None):
    parser = build_parser()
    return darts_search(adopt_flags(parser.parse_args(argv), parser, argv))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
