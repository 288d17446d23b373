"""ENAS (Pham et al., ICML 2018), the seed's entry point (carpedm20/ENAS-pytorch's flags):

    python searching/enas/main.py --network_type rnn --dataset ptb --controller_optim adam \\
        --controller_lr 0.00035 --shared_optim sgd --shared_lr 20.0 --entropy_coeff 0.0001
    python searching/enas/main.py --network_type rnn --dataset wikitext
    python searching/enas/main.py --network_type cnn --dataset cifar --controller_optim momentum \\
        --controller_lr_cosine=True --controller_lr_max 0.05 --controller_lr_min 0.0001 \\
        --entropy_coeff 0.1 [--cnn_space {macro,micro}]

``--dataset NAME`` reads ``./data/NAME`` (``--data DIR`` overrides): a folder of train.txt,
valid.txt, test.txt is a text dataset (rnn); cifar/cifar10 are CIFAR-10 python batches, a
folder of train/<class>/ and valid/<class>/ images an image dataset (cnn). Outputs in --save:
arch-best (+ .json, .txt in ENAS's text form), history.jsonl, summary.json, search.log,
args.json, plots, checkpoint.pt (--resume). Flags: searching/enas/config.py (-h).
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from api.errors import UserError, run_cli
from api.runs.run_folder import adopt_recorded_flags, given_flags
from searching.enas.config import NETWORK_TYPES, build_parser

IMAGE_NAMES = ("cifar", "cifar10", "cifar100")
TEXT_FILES = ("train.txt", "valid.txt", "test.txt")


def resolve_data(args) -> str:
    """The dataset folder: --data, else ./data (CIFAR batches) or ./data/<dataset>."""
    if args.data is None:
        args.data = "./data" if args.dataset in IMAGE_NAMES else os.path.join("./data",
                                                                               args.dataset)
    if not os.path.isdir(args.data):
        raise UserError(f"dataset folder {args.data} not found: put the {args.dataset} files "
                        "there or pass --data DIR")
    return args.data


def check_text_folder(folder: str) -> None:
    for name in TEXT_FILES:
        if not os.path.isfile(os.path.join(folder, name)):
            raise UserError(f"text dataset {folder} has no {name}: a text dataset folder "
                            f"holds {', '.join(TEXT_FILES)} (PTB format)")


def main(argv: Optional[Sequence[str]] = None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.network_type not in NETWORK_TYPES:
        raise UserError(f"--network_type {args.network_type!r} is not one of "
                        f"{', '.join(NETWORK_TYPES)}")
    if args.controller_optim is not None:
        from searching.enas.reinforce import check_controller_optim

        check_controller_optim(args.controller_optim)
    if args.network_type == "cnn":
        from searching.enas import cnn_search

        cnn_search.check_space(args)
    if args.save is None:
        args.save = f"./logs/enas-{args.network_type}-{args.dataset}"
    adopt_recorded_flags(args, args.save, given_flags(parser, argv), "save")
    resolve_data(args)
    if args.network_type == "rnn":
        from searching.enas import rnn_search

        check_text_folder(args.data)
        return rnn_search.run(args)
    from searching.enas import cnn_search

    return cnn_search.run(args)


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
