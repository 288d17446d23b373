"""ENAS CNN search (macro or micro space) on the one weight-sharing trainer:
``searching/enas/main.py --network_type cnn`` calls :func:`run`.

Defaults (flags left at None) are the official scripts' (``cifar10_macro_search.sh`` /
``cifar10_micro_search.sh``); e.g. macro 310 epochs, batch 128, 12 layers, 36 filters; micro
150 epochs, batch 160, 6 layers, 20 filters, auxiliary head 0.4 (its own weights frozen, as
TF's). Both: child SGD Nesterov 0.9 with cosine restarts 0.05 -> 0.0005, TF's gradient "clip"
(none); controller TF Adam, entropy 1e-4, baseline decay 0.99; 45k/5k split
(``--valid_fraction 0.1``).

Fidelity notes (every default): docs/fidelity/enas.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict

from api.errors import UserError
from searching.enas.cnn_flags import CNN_SPACES

#: Per space: the defaults of the flags main.py and cnn_flags leave at None.
DEFAULTS: Dict[str, Dict[str, Any]] = {
    "macro": dict(max_epoch=310, batch_size=128, child_num_layers=12, child_out_filters=36,
                  child_l2_reg=2.5e-4, child_num_branches=6, controller_num_aggregate=20,
                  controller_max_step=50, controller_optim="adam", controller_lr=1e-3,
                  tanh_c=1.5),
    "micro": dict(max_epoch=150, batch_size=160, child_num_layers=6, child_out_filters=20,
                  child_l2_reg=1e-4, child_num_branches=5, controller_num_aggregate=10,
                  controller_max_step=30, controller_optim="adam", controller_lr=3.5e-3,
                  tanh_c=1.10),
}
COMMON = dict(controller_hid=64, entropy_coeff=1e-4, ema_baseline_decay=0.99,
              controller_lr_min=1e-4, controller_grad_clip=0.0, derive_num_sample=10)


def check_space(args: argparse.Namespace) -> str:
    space = str(getattr(args, "cnn_space", "macro"))
    if space not in CNN_SPACES:
        raise UserError(f"--cnn_space {space!r} is not one of {', '.join(CNN_SPACES)}")
    return space


def resolve_cnn_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the None flags with the space's defaults and check them (one line each)."""
    space = check_space(args)
    for key, value in {**COMMON, **DEFAULTS[space]}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    want = DEFAULTS[space]["child_num_branches"]
    if args.child_num_branches != want:
        raise UserError(f"--child_num_branches {args.child_num_branches}: the ENAS {space} "
                        f"space has {want} ops")
    if space == "micro" and args.child_num_cells != 5:
        raise UserError(f"--child_num_cells {args.child_num_cells}: ENAS micro architectures "
                        "have 5 nodes per cell (the 40-integer form)")
    if space == "micro" and (args.child_out_filters < 2 or args.child_out_filters % 2):
        raise UserError("--child_out_filters must be even and at least 2 (factorized "
                        "reductions halve it)")
    for key in ("max_epoch", "batch_size", "child_num_layers", "child_out_filters",
                "controller_num_aggregate", "controller_hid", "derive_num_sample",
                "controller_valid_batches"):
        if int(getattr(args, key)) < 1:
            raise UserError(f"--{key} must be at least 1")
    if args.controller_max_step < 0:
        raise UserError("--controller_max_step must not be negative")
    if not 0.0 < args.valid_fraction < 1.0:
        raise UserError(f"--valid_fraction {args.valid_fraction} must lie in (0, 1)")
    if not 0.0 <= args.ema_baseline_decay < 1.0:
        raise UserError(f"--ema_baseline_decay {args.ema_baseline_decay} must lie in [0, 1)")
    from searching.enas.reinforce import check_controller_optim

    check_controller_optim(args.controller_optim)
    from api.runs.run_folder import resolve_seed

    resolve_seed(args, args.save)
    return args


def image_dataset(args: argparse.Namespace) -> str:
    """The trainer's dataset name for ``--data``: CIFAR python batches or an image folder."""
    from api.datasets import _find_cifar_folder

    root = Path(args.data)
    names = ("cifar100", "cifar10") if args.dataset == "cifar100" else ("cifar10", "cifar100")
    for name in names:
        if _find_cifar_folder(root, name) is not None:
            return name
    if (root / "train").is_dir():
        return "imagefolder"
    raise UserError(f"{root} holds neither CIFAR python batches (cifar-10-batches-py/) nor an "
                    "image folder (train/<class>/): pass --data DIR with one of them")


def build_controller(args: argparse.Namespace, space: str):
    import torch

    from searching.enas.cnn_controllers import MacroController, MicroController

    torch.manual_seed(args.seed + 6)  # the controller's initial weights
    if space == "micro":
        return MicroController(lstm_size=args.controller_hid, num_cells=args.child_num_cells,
                               num_branches=5, tanh_c=args.tanh_c,
                               op_tanh_reduce=args.controller_op_tanh_reduce,
                               temperature=args.softmax_temperature)
    return MacroController(lstm_size=args.controller_hid, num_layers=args.child_num_layers,
                           num_branches=6, tanh_c=args.tanh_c,
                           temperature=args.softmax_temperature,
                           skip_target=args.controller_skip_target)


def run(args: argparse.Namespace):
    """Run the ENAS CNN search that ``args`` (main.py's namespace) describes; print and
    return the found architecture (an :class:`~api.spaces.arch_io.Arch`)."""
    from api.train.distributed import resolve_device
    from searching.enas.cnn_method import EnasCNN
    from searching.oneshot.trainer import OneShotConfig, OneShotSearch

    resolve_cnn_args(args)
    space = args.cnn_space
    dataset = image_dataset(args)
    if space == "micro":
        supernet = dict(C=args.child_out_filters, layers=args.child_num_layers,
                        auxiliary=bool(args.child_use_aux_heads),
                        keep_prob=args.child_keep_prob, drop_path_keep_prob=1.0)
    else:
        supernet = dict(C=args.child_out_filters, layers=args.child_num_layers,
                        keep_prob=args.child_keep_prob, branches=args.macro_branches)
    config = OneShotConfig(
        space=f"enas-{space}", dataset=dataset, data=args.data,
        download=bool(getattr(args, "download", False)), epochs=args.max_epoch,
        batch_size=args.batch_size, seed=args.seed, train_size=args.train_size,
        lr=args.child_lr_max, lr_min=args.child_lr_min, momentum=0.9, nesterov=True,
        weight_decay=2.0 * args.child_l2_reg, grad_clip=args.child_grad_bound,
        supernet=supernet, arch_fraction=args.valid_fraction)
    method = EnasCNN(
        build_controller(args, space), space, child_lr_max=args.child_lr_max,
        child_lr_min=args.child_lr_min, child_t0=args.child_lr_T_0,
        child_t_mul=args.child_lr_T_mul,
        aux_weight=0.4 if space == "micro" and args.child_use_aux_heads else 0.0,
        controller_optim=args.controller_optim, controller_lr=args.controller_lr,
        controller_lr_cosine=bool(args.controller_lr_cosine),
        controller_lr_max=args.controller_lr_max, controller_lr_min=args.controller_lr_min,
        controller_steps=args.controller_max_step,
        num_aggregate=args.controller_num_aggregate, entropy_coeff=args.entropy_coeff,
        baseline_decay=args.ema_baseline_decay,
        skip_weight=args.controller_skip_weight if space == "macro" else 0.0,
        controller_grad_clip=args.controller_grad_clip,
        derive_num_sample=args.derive_num_sample, seed=args.seed, progress=not args.quiet,
        reward_batches=args.controller_valid_batches, clip_mode=args.child_clip_mode,
        train_aux_head=bool(args.child_train_aux_head),
        reward_bn=args.macro_reward_bn if space == "macro" else "train")
    search = OneShotSearch(args.save, config, method, resolve_device(args.device),
                           progress=not args.quiet, plots=not args.no_plots,
                           args=vars(args),
                           checkpoint_seconds=60.0 * args.checkpoint_minutes)
    arch = search.run(resume=args.resume, force=args.force)
    print(f"searched architecture ({arch.space}): {arch.text}")
    return arch
