"""DARTS RNN cell search on Penn Treebank (Liu et al., ICLR 2019), V1 (first order) or V2
(``--unrolled``), in the DARTS RNN space.

    python searching/darts/train_search_rnn.py [--unrolled [--exact_virtual_step]] \
        --data ./data/penn --save DIR

Defaults as quark0/darts ``rnn/train_search.py``; --data is a PTB-format folder (train.txt,
valid.txt, test.txt). Outputs in --save: arch-best (+ .json, .txt: a DARTS
``Genotype(recurrent=..., concat=range(1, 9))`` that evaluation/rnn/train.py --arch takes),
history.jsonl, summary.json, search.log, args.json, plots, checkpoint.pt (--resume).

See docs/darts.md.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from api.errors import UserError, run_cli
from api.runs.run_folder import resolve_seed
from searching.oneshot.cli import add_checkpoint_flag, add_run_flags, adopt_flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_search_rnn.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--unrolled", action="store_true",
                   help="DARTS-V2: the second-order architecture gradient (default: V1)")
    p.add_argument("--exact_virtual_step", action="store_true",
                   help="with --unrolled: the virtual step moves every weight, the tied "
                        "embedding included, and the implicit term is scaled by "
                        "xi*min(1, clip/|g|) (default: the official step, which leaves the "
                        "embedding at w and scales by xi*clip/|g| even above 1)")
    p.add_argument("--data", default="./data/penn",
                   help="PTB-format folder: train.txt, valid.txt, test.txt")
    p.add_argument("--save", default="./search-darts-rnn", help="output folder")
    p.add_argument("--emsize", type=int, default=300, help="word embedding size")
    p.add_argument("--nhid", type=int, default=300, help="cell state size (= emsize: tied)")
    p.add_argument("--lr", type=float, default=20.0, help="weights: SGD lr (constant)")
    p.add_argument("--clip", type=float, default=0.25,
                   help="clip the weights' gradient norm (also the V2 architect's clip)")
    p.add_argument("--epochs", type=int, default=50, help="search epochs")
    p.add_argument("--batch_size", type=int, default=256, help="parallel streams")
    p.add_argument("--bptt", type=int, default=35, help="window length")
    for name, value, what in (("dropout", 0.75, "cell outputs"), ("dropouth", 0.25, "h"),
                              ("dropoutx", 0.75, "x (cell input)"),
                              ("dropouti", 0.2, "embedding outputs"),
                              ("dropoute", 0.0, "whole words")):
        p.add_argument(f"--{name}", type=float, default=value, help=f"dropout on {what}")
    p.add_argument("--beta", type=float, default=1e-3,
                   help="TAR (slowness) on the raw cell outputs in the weight step")
    p.add_argument("--wdecay", "--weight_decay", dest="wdecay", type=float, default=5e-7,
                   help="weights: SGD weight decay")
    p.add_argument("--arch_lr", "--arch_learning_rate", dest="arch_lr", type=float,
                   default=3e-3, help="Adam lr of alpha")
    p.add_argument("--arch_wdecay", "--arch_weight_decay", dest="arch_wdecay", type=float,
                   default=1e-3, help="Adam weight decay of alpha")
    add_run_flags(p)
    add_checkpoint_flag(p)
    return p


def darts_rnn_search(args: argparse.Namespace):
    from api.train.distributed import resolve_device
    from searching.darts.method_rnn import DARTSRNN
    from searching.oneshot.text import TextOneShotSearch
    from searching.oneshot.trainer import OneShotConfig

    for name in ("epochs", "batch_size", "bptt", "emsize"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1")
    if args.exact_virtual_step and not args.unrolled:
        raise UserError("--exact_virtual_step changes DARTS-V2's virtual step: add --unrolled")
    if args.nhid != args.emsize:
        raise UserError(f"the decoder is tied to the embedding: --nhid ({args.nhid}) must "
                        f"equal --emsize ({args.emsize})")
    resolve_seed(args, args.save)
    supernet = dict(emsize=args.emsize, nhid=args.nhid, dropout=args.dropout,
                    dropouth=args.dropouth, dropoutx=args.dropoutx, dropouti=args.dropouti,
                    dropoute=args.dropoute)
    config = OneShotConfig(space="darts-rnn", dataset="ptb-format", data=args.data,
                           epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                           lr=args.lr, lr_min=args.lr, momentum=0.0, nesterov=False,
                           weight_decay=args.wdecay, grad_clip=args.clip, crop_padding=0,
                           flip=False, supernet=supernet)
    method = DARTSRNN(args.unrolled, args.arch_lr, args.arch_wdecay, bptt=args.bptt,
                      beta=args.beta, exact_virtual_step=args.exact_virtual_step)
    search = TextOneShotSearch(args.save, config, method, resolve_device(args.device),
                               progress=not args.quiet, plots=not args.no_plots,
                               args=vars(args), checkpoint_seconds=60.0 * args.checkpoint_minutes,
                               bptt=args.bptt)
    arch = search.run(resume=args.resume, force=args.force)
    print(f"searched architecture: {arch.text}")
    return arch


def main(argv: Optional[Sequence[str]] = None):
    parser = build_parser()
    return darts_rnn_search(adopt_flags(parser.parse_args(argv), parser, argv))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
