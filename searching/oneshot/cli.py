"""The command-line part every weight-sharing search shares (DARTS, GDAS; ENAS and NAO-WS
next): the common flags, per-space defaults, seed handling and the one call into
:class:`~searching.oneshot.trainer.OneShotSearch`.

A method's CLI adds its own flags to :func:`add_search_flags`'s parser, fills its per-space
defaults with :func:`resolve_search_args`, builds its method object and calls
:func:`run_search`.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Mapping, Optional, Sequence

from api.datasets import add_download_flag
from api.errors import UserError
from api.runs.run_folder import add_run_flags as common_run_flags
from api.runs.run_folder import adopt_recorded_flags, given_flags, resolve_seed


def add_search_flags(p: argparse.ArgumentParser, save_default: str,
                     defaults_help: Mapping[str, str]) -> argparse.ArgumentParser:
    """The flags every one-shot search takes (DARTS's names where it has them). Flags whose
    default depends on the space default to None; ``defaults_help`` says, per flag name,
    what the per-space default is."""
    def h(name: str, text: str = "") -> str:
        extra = defaults_help.get(name, "")
        return f"{text}; {extra}" if text and extra else (text or extra or None)

    p.add_argument("--space", required=True, help="nas-bench-201 or darts (the DARTS/NASNet "
                   "CNN space)")
    p.add_argument("--dataset", default="cifar10",
                   help="cifar10, cifar100 or imagefolder (DIR/train/<class>/*)")
    p.add_argument("--data", default="./data", help="folder holding the dataset")
    add_download_flag(p)
    p.add_argument("--save", default=save_default, help="output folder")
    p.add_argument("--epochs", type=int, default=None, help=h("epochs", "search epochs"))
    p.add_argument("--batch_size", type=int, default=None,
                   help=h("batch_size", "images per batch, in each half"))
    add_run_flags(p)
    p.add_argument("--train_size", type=int, default=0,
                   help="use N training images in all (class-balanced, seeded; halved into "
                        "weights / architecture halves; nas-bench-201 on cifar100: the "
                        "weights' images, the architecture's are the test split's xvalid "
                        "half); 0: the whole training split")
    p.add_argument("--split_file", default="",
                   help="nas-bench-201: AutoDL's split file (configs/nas-benchmark/ of "
                        "AutoDL-Projects): cifar-split.txt (cifar10: the weights' and the "
                        "architecture's 25k training images) or cifar100-test-split.txt "
                        "(cifar100: the 5k xvalid test images the architecture trains on); "
                        "without it: seeded class-balanced halves / a fixed class-balanced half "
                        "of the test split")
    p.add_argument("--benchmark_file", default=None,
                   help="the NAS-Bench-201 table (nb201.csv.gz): look up each epoch's cell")
    p.add_argument("--init_channels", type=int, default=None, help=h("init_channels", "C"))
    p.add_argument("--layers", "--N", dest="layers", type=int, default=None,
                   help=h("layers", "nas-bench-201: N cells per stage; darts: cells in all"))
    p.add_argument("--track_running_stats", type=int, choices=(0, 1), default=1,
                   help="the search cells' BN keep running statistics (AutoDL's BN1; both "
                        "spaces; 0: batch statistics in evaluation too)")
    p.add_argument("--learning_rate", type=float, default=0.025,
                   help="weights: SGD lr of the first epoch (cosine to --learning_rate_min)")
    p.add_argument("--learning_rate_min", type=float, default=0.001,
                   help="weights: the cosine schedule's floor")
    p.add_argument("--momentum", type=float, default=0.9, help="weights: SGD momentum")
    p.add_argument("--weight_decay", type=float, default=None,
                   help=h("weight_decay", "weights: SGD weight decay"))
    p.add_argument("--grad_clip", type=float, default=5.0,
                   help="clip the gradient norm of the weight step (0: no clipping)")
    p.add_argument("--arch_learning_rate", type=float, default=3e-4,
                   help="Adam lr of the architecture parameters (betas 0.5, 0.999)")
    p.add_argument("--arch_weight_decay", type=float, default=1e-3,
                   help="Adam weight decay of the architecture parameters")
    add_checkpoint_flag(p)
    return p


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The common run flags of every one-shot search (image and text), plus --no_plots."""
    common_run_flags(p, "save")
    p.add_argument("--no_plots", action="store_true", help="skip the PNG plots")


def add_checkpoint_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint_minutes", type=float, default=10.0,
                   help="also checkpoint mid-epoch after a step when this many minutes have "
                        "passed since the last save (0: every step; -1: epochs only)")


def resolve_search_args(args: argparse.Namespace, method: str,
                        defaults: Mapping[str, Mapping[str, Any]]) -> argparse.Namespace:
    """Check ``--space`` against ``defaults`` (space -> {flag: default}), fill the flags left
    at None with the space's defaults, check sizes and pick the seed (the resumed search's
    own, or a random one, printed)."""
    if args.space not in defaults:
        raise UserError(f"unknown space {args.space!r} for {method} (choose "
                        f"{', '.join(defaults)})")
    for key, value in defaults[args.space].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs and --batch_size must be at least 1")
    return resolve_seed(args, args.save)


def adopt_flags(args: argparse.Namespace, parser: argparse.ArgumentParser,
                argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """``--resume``: the flags not on the command line take the search's recorded values."""
    return adopt_recorded_flags(args, args.save, given_flags(parser, argv), "save")


def supernet_kwargs(args: argparse.Namespace, **darts_extra: Any) -> Dict[str, Any]:
    """The space's supernet keyword arguments from --init_channels/--layers and
    --track_running_stats (BN without affine on NAS-Bench-201, as AutoDL's search models).
    On the darts space the BN flag is passed only when off, so the recorded settings of a
    search with the default stay as they were."""
    if args.space == "nas-bench-201":
        return dict(C=args.init_channels, N=args.layers, affine=False,
                    track_running_stats=bool(args.track_running_stats))
    if not args.track_running_stats:
        darts_extra["track_running_stats"] = False
    return dict(C=args.init_channels, layers=args.layers, **darts_extra)


def run_search(args: argparse.Namespace, method, nesterov: bool,
               supernet: Dict[str, Any], space: Optional[str] = None, **config: Any):
    """Build the trainer's config from the common flags (``space``: the method's own, where it
    has no --space flag; ``config``: further OneShotConfig fields) and run ``method``'s search
    in ``--save``; print and return the searched architecture."""
    from api.train.distributed import resolve_device
    from searching.oneshot.trainer import OneShotConfig, OneShotSearch

    config = OneShotConfig(
        space=space or args.space, dataset=args.dataset, data=args.data,
        download=bool(getattr(args, "download", False)), epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, train_size=args.train_size,
        lr=args.learning_rate, lr_min=args.learning_rate_min, momentum=args.momentum,
        nesterov=bool(nesterov), weight_decay=args.weight_decay, grad_clip=args.grad_clip,
        supernet=supernet, split_file=str(getattr(args, "split_file", "") or ""), **config)
    search = OneShotSearch(args.save, config, method, resolve_device(args.device),
                           progress=not args.quiet, plots=not args.no_plots,
                           benchmark_file=getattr(args, "benchmark_file", None), args=vars(args),
                           checkpoint_seconds=60.0 * args.checkpoint_minutes)
    arch = search.run(resume=args.resume, force=args.force)
    print(f"searched architecture: {arch.text}")
    return arch
