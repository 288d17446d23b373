"""ENAS (Pham et al., ICML 2018) on the NAS-Bench-201 space, as AutoDL-Projects runs it.

    python searching/enas/search_nb201.py --space nas-bench-201 --dataset cifar10 --data DIR --save DIR

Defaults are AutoDL-Projects' (``configs/nas-benchmark/algos/ENAS.config``,
``scripts-search/NAS-Bench-201-algos/ENAS.sh``): 310 epochs of batch 128, shared SGD 0.05
Nesterov, cosine of period 20 epochs down to 0.0005, wd 2.5e-4; controller: 2-layer LSTM of 32
units, Adam 1e-3 (betas 0, 0.999; eps 1e-3), 50 steps of 20 samples per epoch, entropy weight
1e-4, baseline decay 0.99; the found cell is the best of 100 samples. Outputs in --save:
arch-best (+ .json, .txt), history.jsonl, summary.json, search.log, args.json, curves.png,
checkpoint.pt (--resume).

See docs/enas.md.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from api.errors import UserError, run_cli
from searching.oneshot.cli import adopt_flags, add_search_flags, resolve_search_args, run_search, \
    supernet_kwargs

#: AutoDL's ENAS.config and ENAS.sh (C=16, N=5 cells per stage).
DEFAULTS = {"nas-bench-201": dict(init_channels=16, layers=5, batch_size=128, epochs=310,
                                  weight_decay=2.5e-4)}
#: --baseline_scope's choices (searching.enas.reinforce.PhaseBaseline).
PHASE_SCOPES = ("phase", "sample")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="search_nb201.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    c = p.add_argument_group("controller (AutoDL's ENAS.sh / ENAS.config)")
    c.add_argument("--controller_train_steps", type=int, default=50,
                   help="controller steps per epoch")
    c.add_argument("--controller_num_aggregate", type=int, default=20,
                   help="samples whose gradients one controller step averages")
    c.add_argument("--controller_entropy_weight", type=float, default=1e-4,
                   help="weight of the sample's entropy in its reward")
    c.add_argument("--controller_bl_dec", type=float, default=0.99,
                   help="the baseline's moving-average decay")
    c.add_argument("--controller_num_samples", type=int, default=100,
                   help="the searched cell: the best of this many samples after the last epoch")
    c.add_argument("--controller_derive_samples", type=int, default=10,
                   help="each epoch's cell: the best of this many samples")
    c.add_argument("--controller_lr", type=float, default=1e-3, help="controller Adam lr")
    c.add_argument("--controller_betas", type=float, nargs=2, default=[0.0, 0.999],
                   metavar=("BETA1", "BETA2"), help="controller Adam betas")
    c.add_argument("--controller_eps", type=float, default=1e-3, help="controller Adam eps")
    c.add_argument("--controller_grad_clip", type=float, default=5.0,
                   help="controller gradient-norm clip (0: none)")
    c.add_argument("--lstm_size", type=int, default=32, help="controller LSTM units")
    c.add_argument("--lstm_layers", type=int, default=2, help="controller LSTM layers")
    c.add_argument("--tanh_constant", type=float, default=2.5,
                   help="logits = tanh_constant * tanh(logits / temperature)")
    c.add_argument("--temperature", type=float, default=5.0, help="see --tanh_constant")
    c.add_argument("--baseline_scope", choices=PHASE_SCOPES, default="phase",
                   help="phase (AutoDL's): each controller phase averages from the baseline "
                        "the last phase ended with, not carried from sample to sample; sample: "
                        "the moving average carried from sample to sample (ENAS's)")
    c.add_argument("--reward_grad", type=int, choices=(0, 1), default=1,
                   help="1 (AutoDL's): the entropy bonus in the reward and baseline carries "
                        "gradient through the advantage; 0: the advantage is a constant "
                        "(REINFORCE, as ENAS's TF code)")
    c.add_argument("--epoch_valid", type=int, choices=(0, 1), default=1,
                   help="1 (AutoDL's): score each epoch's cell on the whole validation half "
                        "(logged, with the best so far; the search's answer does not depend "
                        "on it); 0: skip that pass")
    p.add_argument("--T_max", type=int, default=10,
                   help="shared lr: lr_min + (lr - lr_min) * (1 + cos(pi * epoch / T_max)) / 2 "
                        "(AutoDL's cosine; 10 of 310 epochs is a wave of period 20)")
    add_search_flags(p, "./search-enas-nb201", {
        "epochs": "default 310", "batch_size": "default 128 (shared network and controller)",
        "init_channels": "default 16", "layers": "default 5",
        "weight_decay": "default 2.5e-4; SGD is Nesterov"})
    p.set_defaults(learning_rate=0.05, learning_rate_min=0.0005, arch_learning_rate=None,
                   arch_weight_decay=None)
    return p


def enas_nb201_search(args: argparse.Namespace):
    import torch

    from searching.enas.nb201_controller import NB201Controller
    from searching.enas.nb201_method import EnasNB201

    if args.arch_learning_rate is not None or args.arch_weight_decay is not None:
        raise UserError("ENAS has no architecture parameters: set the controller's Adam with "
                        "--controller_lr (and --controller_betas, --controller_eps)")
    resolve_search_args(args, "ENAS", DEFAULTS)
    for key in ("controller_train_steps", "controller_num_aggregate", "controller_num_samples",
                "controller_derive_samples", "lstm_size", "lstm_layers", "T_max"):
        if getattr(args, key) < 1:
            raise UserError(f"--{key} must be at least 1")
    if not 0.0 <= args.controller_bl_dec < 1.0:
        raise UserError(f"--controller_bl_dec {args.controller_bl_dec} must lie in [0, 1)")
    if args.temperature <= 0:
        raise UserError(f"--temperature {args.temperature} must be positive")
    if args.controller_lr <= 0 or args.controller_eps <= 0 or not all(
            0.0 <= b < 1.0 for b in args.controller_betas):
        raise UserError("--controller_lr and --controller_eps must be positive, "
                        "--controller_betas in [0, 1)")
    torch.manual_seed(args.seed + 6)  # the controller's initial weights
    controller = NB201Controller(lstm_size=args.lstm_size, lstm_layers=args.lstm_layers,
                                 tanh_constant=args.tanh_constant, temperature=args.temperature)
    method = EnasNB201(
        controller, controller_lr=args.controller_lr, controller_betas=args.controller_betas,
        controller_eps=args.controller_eps, controller_grad_clip=args.controller_grad_clip,
        train_steps=args.controller_train_steps, num_aggregate=args.controller_num_aggregate,
        entropy_weight=args.controller_entropy_weight, baseline_decay=args.controller_bl_dec,
        baseline_scope=args.baseline_scope, reward_grad=bool(args.reward_grad),
        derive_samples=args.controller_derive_samples,
        final_samples=args.controller_num_samples, t_max=args.T_max,
        epoch_valid=bool(args.epoch_valid), seed=args.seed, progress=not args.quiet)
    return run_search(args, method, True, supernet_kwargs(args))  # AutoDL: Nesterov SGD


def main(argv: Optional[Sequence[str]] = None):
    parser = build_parser()
    return enas_nb201_search(adopt_flags(parser.parse_args(argv), parser, argv))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
