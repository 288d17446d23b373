"""Write the CIFAR-10 proxy dataset of the CNN search once.

    python searching/cnn/make_cifar10_proxy.py --data ./data --out ./data/cifar10_proxy.npz

Draws ``--train`` images from the train split and ``--val`` from the test split (or, with
``--val_source train``, held out from the train split), class-balanced and without
replacement, with the seeded RNG (paper: 5,000 / 1,000). The search reads the file
with ``--proxy_file``; without it, the search draws the same proxy itself from ``--seed``.
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import numpy as np

from api.datasets import add_download_flag
from api.datasets import PROXY_VAL_SOURCES, load_images, make_proxy
from api.errors import UserError, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="./data", help="folder holding cifar-10-batches-py")
    add_download_flag(p)
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagefolder"])
    p.add_argument("--out", default="./data/cifar10_proxy.npz", help="proxy file to write")
    p.add_argument("--train", type=int, default=5000, help="proxy training images")
    p.add_argument("--val", type=int, default=1000, help="proxy validation images")
    p.add_argument("--val_source", default="test", choices=list(PROXY_VAL_SOURCES),
                   help="validation images from the test split (the paper's code) or held "
                        "out from the train split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image_size", type=int, default=32, help="resolution (imagefolder only)")
    return p


def make_cifar10_proxy(args: argparse.Namespace) -> str:
    if args.train < 1 or args.val < 1:
        raise UserError("--train and --val must be at least 1")
    splits = load_images(args.dataset, args.data, args.image_size, download=args.download or None)
    proxy = make_proxy(splits, args.train, args.val, args.seed, args.val_source)
    proxy.save(args.out)
    per_class = np.bincount(proxy.train_y, minlength=proxy.num_classes)
    print(f"wrote {args.out}: {len(proxy.train_y)} train / {len(proxy.val_y)} val images, "
          f"{proxy.num_classes} classes, train images per class {per_class.min()}-{per_class.max()}")
    return args.out


def main(argv: Optional[Sequence[str]] = None) -> None:
    make_cifar10_proxy(build_parser().parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
