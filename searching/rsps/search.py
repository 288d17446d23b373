"""RSPS, random search with parameter sharing (Li & Talwalkar, UAI 2019), on NAS-Bench-201.

    python searching/rsps/search.py --space nas-bench-201 --dataset cifar10 --data DIR --save DIR

Defaults are AutoDL-Projects' (``configs/nas-benchmark/algos/RANDOM.config``,
``scripts-search/NAS-Bench-201-algos/RANDOM-NAS.sh``): 250 epochs, batch 64, Nesterov SGD
0.025 cosine to 0.001, weight decay 5e-4, gradient clip 5, the best of 100 uniform cells each
scored on one batch of 512 evaluation images. Outputs in --save: arch-best (+ .json, .txt),
history.jsonl, summary.json, search.log, args.json, curves.png, checkpoint.pt (--resume).

See docs/rsps_setn.md.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from api.errors import UserError, run_cli
from searching.oneshot.cli import adopt_flags, add_search_flags, resolve_search_args, \
    run_search, supernet_kwargs
from searching.oneshot.sampling import UNUSED_GRADS

#: AutoDL's RANDOM.config and RANDOM-NAS.sh (C=16, N=5).
DEFAULTS = {"nas-bench-201": dict(init_channels=16, layers=5, batch_size=64, epochs=250,
                                  weight_decay=5e-4)}
#: Shared one-shot flags RSPS has no use for (it has no architecture parameters).
UNUSED_FLAGS = ("arch_learning_rate", "arch_weight_decay")


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """The evaluator's flags RSPS and SETN share."""
    p.add_argument("--select_num", type=int, default=100,
                   help="cells scored after each epoch, each on one evaluation batch "
                        "(AutoDL's --select_num; default 100)")
    p.add_argument("--test_batch_size", type=int, default=512,
                   help="images per evaluation batch (AutoDL's test_batch_size; default 512)")
    p.add_argument("--unused_grads", choices=UNUSED_GRADS, default="zero",
                   help="weights the step's cell leaves out: 'zero' (default) keeps their "
                        "gradient at zero once created, so weight decay and momentum still "
                        "move them, as PyTorch < 2.0 ran AutoDL's code; 'none': PyTorch >= "
                        "2.0's zero_grad, SGD skips them")


def check_sampling_flags(args: argparse.Namespace) -> None:
    if args.select_num < 1:
        raise UserError("--select_num must be at least 1")
    if args.test_batch_size < 1:
        raise UserError("--test_batch_size must be at least 1")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="search.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sampling_flags(p)
    add_search_flags(p, "./search-rsps", {
        "epochs": "default 250",
        "batch_size": "default 64",
        "init_channels": "default 16",
        "layers": "default 5",
        "weight_decay": "default 5e-4; SGD is Nesterov"})
    for action in p._actions:
        if action.dest in UNUSED_FLAGS:
            action.help = argparse.SUPPRESS
    return p


def rsps_search(args: argparse.Namespace):
    from searching.rsps.method import RSPS

    check_sampling_flags(args)
    resolve_search_args(args, "RSPS", DEFAULTS)
    method = RSPS(args.select_num, args.test_batch_size, args.unused_grads, seed=args.seed)
    return run_search(args, method, True, supernet_kwargs(args))  # AutoDL: Nesterov SGD


def main(argv: Optional[Sequence[str]] = None):
    parser = build_parser()
    return rsps_search(adopt_flags(parser.parse_args(argv), parser, argv))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
