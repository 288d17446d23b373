"""NAO-WS search (Luo et al., NeurIPS 2018) on the ENAS micro space, weight sharing.

    python searching/nao/train_search.py --dataset cifar10 --data DIR --save DIR

Defaults are the TF release's NAO-WS (renqianluo/NAO ``NAO-WS/cnn/train_search.sh``). The
supernet trains on architectures drawn from the pool; at each evaluation point the pool is
scored on held-out images, the encoder-predictor-decoder is trained on it, and generated unseen
architectures replace the worst. Outputs in --save: NAO's arch_pool / arch_pool.perf (and
per-evaluation copies), arch_pool.final, arch_pool.scores, arch-best (+ .json, .txt),
history.jsonl, summary.json, search.log, args.json, curves.png, checkpoint.pt.

See docs/nao.md.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from api.datasets import add_download_flag
from api.errors import UserError, run_cli
from api.runs.run_folder import resolve_seed
from searching.oneshot.cli import add_checkpoint_flag, add_run_flags, adopt_flags, run_search


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_search.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="cifar10",
                   help="cifar10, cifar100 or imagefolder (DIR/train/<class>/*)")
    p.add_argument("--data", default="./data", help="folder holding the dataset")
    add_download_flag(p)
    p.add_argument("--save", default="./exp/search_cifar10", help="output folder")
    p.add_argument("--epochs", type=int, default=150, help="supernet epochs in all")
    p.add_argument("--iterations", type=int, default=4,
                   help="pool updates (evaluate, train the controller, generate); the pool is "
                        "evaluated after each of the --iterations + 1 equal parts of --epochs")
    p.add_argument("--seed_arch", type=int, default=1000, help="random architectures to start")
    p.add_argument("--new_arch", type=int, default=500,
                   help="architectures generated per update")
    p.add_argument("--random_arch", type=int, default=None,
                   help="fresh random architectures added per update (default seed_arch // 20, "
                        "TF's 50 of 1,000)")
    p.add_argument("--child_arch_pool", default=None, metavar="FILE",
                   help="start from this pool instead of --seed_arch random architectures: an "
                        "arch_pool file (NAO's or ours), 40 integers a line")
    p.add_argument("--top_archs", type=int, default=100,
                   help="the best pool architectures the generation starts from")
    p.add_argument("--max_step", type=int, default=100,
                   help="largest gradient-ascent step size tried")
    p.add_argument("--controller_epochs", type=int, default=1000,
                   help="controller training epochs per update")
    p.add_argument("--controller_batch_size", type=int, default=100)
    p.add_argument("--controller_lr", type=float, default=1e-3,
                   help="constant under Adam; SGD: x0.9 every 1000 steps after step 100")
    p.add_argument("--controller_optimizer", choices=("adam", "sgd"), default="adam",
                   help="adam: TF's Adam defaults (beta1 0.9, beta2 0.999, eps 1e-8)")
    p.add_argument("--controller_mlp_dropout", type=float, default=0.0,
                   help="dropout in the predictor's MLP while training (TF passes 0.1 to a "
                        "dropout left in inference mode, so it applies none)")
    p.add_argument("--controller_swapped_decoder_inputs", action="store_true",
                   help="with symmetry augmentation, teacher-force the decoder on the swapped "
                        "sequence it reconstructs (TF feeds it the unswapped one)")
    p.add_argument("--controller_trade_off", type=float, default=0.8,
                   help="loss = w * MSE + (1 - w) * NLL")
    p.add_argument("--no_symmetry", action="store_true",
                   help="train the controller without swapping a node's two branches")
    p.add_argument("--batch_size", type=int, default=160, help="supernet training batch")
    p.add_argument("--eval_batch_size", type=int, default=500,
                   help="validation images per pool architecture")
    p.add_argument("--train_size", type=int, default=0,
                   help="use N training images in all (class-balanced, seeded; split into "
                        "weights / validation parts); 0: the whole training split")
    p.add_argument("--valid_fraction", type=float, default=0.1,
                   help="share of the training images held out to score the pool (TF NAO-WS "
                        "and ENAS: 5k of 50k)")
    p.add_argument("--init_channels", type=int, default=20, help="supernet filters")
    p.add_argument("--layers", type=int, default=6, help="supernet normal cells")
    p.add_argument("--learning_rate", type=float, default=0.05, help="cosine restarts top")
    p.add_argument("--learning_rate_min", type=float, default=0.0005)
    p.add_argument("--lr_T_0", type=int, default=10, help="first cosine period (epochs)")
    p.add_argument("--lr_T_mul", type=int, default=2, help="period multiplier")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD (Nesterov)")
    p.add_argument("--weight_decay", type=float, default=2e-4,
                   help="SGD weight decay: TF's l2 1e-4 times sum(w**2) in the loss has this "
                        "gradient")
    p.add_argument("--grad_clip", type=float, default=0.0,
                   help="clip each weight tensor's gradient norm (TF's clip_mode 'norm' with "
                        "--child_grad_bound 5, as meant); 0: no clipping, what TF's code does")
    p.add_argument("--aux_weight", type=float, default=0.4,
                   help="auxiliary head's loss weight (0: no auxiliary head)")
    p.add_argument("--keep_prob", type=float, default=0.9, help="dropout keep before the head")
    p.add_argument("--drop_path_keep_prob", type=float, default=1.0,
                   help="drop-path keep probability at the end of the search (1: none, as TF's "
                        "search network, which ignores the script's 0.6)")
    add_run_flags(p)
    add_checkpoint_flag(p)
    return p


def supernet_kwargs(args: argparse.Namespace):
    """The ENAS micro supernet's settings from the flags."""
    return dict(C=args.init_channels, layers=args.layers, auxiliary=args.aux_weight > 0,
                keep_prob=args.keep_prob, drop_path_keep_prob=args.drop_path_keep_prob)


def nao_search(args: argparse.Namespace):
    from searching.nao.controller import ControllerConfig
    from searching.nao.method import NAOWS, eval_points

    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs and --batch_size must be at least 1")
    if not 0.0 < args.valid_fraction < 1.0:
        raise UserError(f"--valid_fraction must be in (0, 1), got {args.valid_fraction}")
    if args.lr_T_0 < 1 or args.lr_T_mul < 1:
        raise UserError(f"--lr_T_0 and --lr_T_mul must be at least 1 (cosine restarts), got "
                        f"{args.lr_T_0} and {args.lr_T_mul}")
    eval_points(args.epochs, args.iterations)
    resolve_seed(args, args.save)
    from searching.nao.pool import read_arch_pool

    if not 0.0 <= args.controller_mlp_dropout < 1.0:
        raise UserError(f"--controller_mlp_dropout must be in [0, 1), got "
                        f"{args.controller_mlp_dropout}")
    initial = None if args.child_arch_pool is None else read_arch_pool(args.child_arch_pool)
    controller = ControllerConfig(lr=args.controller_lr, batch_size=args.controller_batch_size,
                                  trade_off=args.controller_trade_off,
                                  optimizer=args.controller_optimizer,
                                  mlp_dropout=args.controller_mlp_dropout,
                                  swapped_decoder_inputs=args.controller_swapped_decoder_inputs)
    method = NAOWS(args.seed_arch, args.new_arch, args.random_arch, args.iterations,
                   args.controller_epochs, args.top_archs, args.max_step, args.eval_batch_size,
                   args.aux_weight, not args.no_symmetry, args.lr_T_0, args.lr_T_mul,
                   controller, seed=args.seed, out_dir=args.save, progress=not args.quiet,
                   initial_pool=initial)
    return run_search(args, method, True, supernet_kwargs(args), space="enas-micro",
                      arch_fraction=args.valid_fraction)


def main(argv: Optional[Sequence[str]] = None):
    parser = build_parser()
    return nao_search(adopt_flags(parser.parse_args(argv), parser, argv))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
