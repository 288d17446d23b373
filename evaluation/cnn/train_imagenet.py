"""Train a ShrinkCNN, or any CNN architecture, on ImageNet (ImageFolder), PyTorch DDP.

    torchrun --standalone --nproc_per_node 8 evaluation/cnn/train_imagenet.py \
        --model_spec model_spec.json --data /path/to/imagenet --output runs/shrinkcnn-a
    torchrun --standalone --nproc_per_node 8 evaluation/cnn/train_imagenet.py \
        --arch darts-v2 --data /path/to/imagenet --output runs/darts-v2-imagenet

The network and the default recipe follow the architecture (api.train.arch_train): AutoShrink
cells the paper's TF recipe (``autoshrink``), DARTS-family and NAS-Bench-201 cells DARTS's mobile
setting (``darts``); --recipe or any recipe flag overrides them. --data holds train/<class>/ and
val/<class>/. The reported figures are the final epoch's (raw and EMA) top-1/top-5; nothing is
selected on the val split. --resume keeps the run's recipe and architecture.

See docs/evaluation.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Set

import torch
from torch import nn

from api.train import arch_train as at
from api.train.checkpoint import LAST, load_checkpoint
from api.spaces.complexity import complexity
from api.train.distributed import cleanup, init_distributed
from api.train.drop_path import DropPath
from api.train.ema import ModelEma
from api.errors import UserError, run_cli
from api.train.imagenet import AugmentConfig, train_loader, val_loader
from api.spaces.autoshrink_cnn.model_spec import (IMAGENET_BASE, NETWORK_FLAGS, TF_L2, ModelSpec, add_network_args,
                            model_spec_from_args, network_overrides, resolve_network)
from api.train.optim import RMSpropTF, WarmupCosineLR, scaled_lr, weight_decay_groups
from api.train.trainer import (LoaderSource, Trainer, TrainerConfig, add_run_flags, check_output)
from api.runs.run_folder import given_flags, resume_args, write_args

# Flags a resumed run may change (with api.runs.run_folder.RUN_FLAGS): where the data is, how it is
# loaded, how often and in what batches it is evaluated, CUDA execution details.
RUNTIME_FLAGS = {"data", "workers", "eval_every", "val_batch_size", "no_amp",
                 "no_channels_last"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=at.HelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--model_spec", help="model spec JSON written by build_imagenet.py "
                                        "(AutoShrink cells; instead of --arch)")
    g.add_argument("--regularizer", type=float, default=None,
                   help="L2 weight, TF style (default: the spec's, 4e-5)")
    at.add_arch_args(p)
    add_network_args(p, "AutoShrink cells only: from --model_spec, else a preset graph, else "
                        "the ShrinkCNN network")
    g = p.add_argument_group("data")
    g.add_argument("--data", required=True, help="ImageFolder root with train/ and val/")
    g.add_argument("--workers", type=int, default=8, help="DataLoader workers per process")
    g.add_argument("--crop_scale", type=float, nargs=2,
                   help="random-resized crop area range (autoshrink 0.75 1, darts 0.08 1)")
    g.add_argument("--color_jitter", type=float, help="recipes: 0.4")
    g.add_argument("--reprob", type=float,
                   help="random erasing probability (autoshrink 0.5, darts 0)")
    g.add_argument("--crop_pct", type=float, help="val centre crop fraction (recipes: 0.875)")
    g = p.add_argument_group(
        "optimisation", "unset flags come from --recipe (see the module docstring)")
    at.add_recipe_flag(g, at.IMAGENET_RECIPES, at.DEFAULT_RECIPE["imagenet"])
    g.add_argument("--optimizer", choices=["rmsprop_tf", "sgd"],
                   help="autoshrink rmsprop_tf, darts sgd")
    g.add_argument("--schedule", choices=["cosine", "exponential"],
                   help="cosine to 0, or x --lr_decay every epoch (autoshrink cosine, darts "
                        "exponential)")
    g.add_argument("--lr_decay", type=float, help="per-epoch factor of --schedule exponential "
                                                  "(darts 0.97)")
    g.add_argument("--epochs", type=int, help="autoshrink 300, darts 250")
    g.add_argument("--warmup_epochs", type=float, help="autoshrink 10, darts 0")
    g.add_argument("--batch_size", type=int, help="images per process (recipes: 128)")
    g.add_argument("--val_batch_size", type=int, default=None, help="default: --batch_size")
    g.add_argument("--lr", type=float,
                   help="learning rate per 128 images, scaled by the global batch "
                        "(autoshrink 0.05, darts 0.1)")
    g.add_argument("--weight_decay", type=float,
                   help="PyTorch weight decay (autoshrink: 2 x the TF-style regularizer = "
                        "8e-5; darts 3e-5)")
    g.add_argument("--weight_decay_all", action=argparse.BooleanOptionalAction, default=None,
                   help="decay every parameter (darts), not only non-depthwise conv/linear "
                        "weights (autoshrink)")
    g.add_argument("--rmsprop_decay", type=float, default=0.9)
    g.add_argument("--momentum", type=float, help="recipes: 0.9")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum (SGD)")
    g.add_argument("--rmsprop_eps", type=float, default=1.0, help="inside the sqrt (TF)")
    g.add_argument("--ema_decay", type=float,
                   help="weight EMA, 0 disables it (autoshrink 0.999, darts 0)")
    g.add_argument("--label_smoothing", type=float, help="recipes: 0.1")
    g.add_argument("--grad_clip", type=float,
                   help="max grad norm, 0: off (autoshrink 0, darts 5)")
    g.add_argument("--drop_path", "--drop_path_prob", dest="drop_path", type=float,
                   help="final drop-path probability, ramped linearly from 0 (recipes: 0)")
    g.add_argument("--auxiliary_weight", type=float,
                   help="auxiliary head loss weight, 0: no head (darts 0.4; DARTS-family "
                        "networks only)")
    g = add_run_flags(p, "./runs/imagenet")
    g.add_argument("--sync_bn", action="store_true", help="SyncBatchNorm across GPUs")
    return p


def check_args(args: argparse.Namespace) -> None:
    for flag in ("epochs", "batch_size", "eval_every"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.workers < 0 or args.warmup_epochs < 0:
        raise UserError("--workers and --warmup_epochs must not be negative")
    if args.lr <= 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    if not 0 < args.crop_scale[0] <= args.crop_scale[1] <= 1:
        raise UserError(f"--crop_scale needs 0 < min <= max <= 1, got {args.crop_scale}")
    if not 0 < args.crop_pct <= 1:
        raise UserError(f"--crop_pct must be in (0, 1], got {args.crop_pct}")
    if not 0.0 <= args.drop_path < 1.0:
        raise UserError(f"--drop_path must be in [0, 1), got {args.drop_path}")
    if args.auxiliary_weight < 0 or not 0 < args.lr_decay <= 1:
        raise UserError("--auxiliary_weight must not be negative and --lr_decay must be in "
                        "(0, 1]")


def train_imagenet(args: argparse.Namespace,
                   given: Optional[Set[str]] = None) -> Dict[str, Any]:
    """Train as ``args`` say; ``given``: the flags on the command line (what --resume checks
    against the run's; None: none)."""
    env = init_distributed(args.device)
    try:
        return _train(args, env, given or set())
    finally:
        cleanup()


def _train(args: argparse.Namespace, env, given: Set[str]) -> Dict[str, Any]:
    output = Path(args.output)
    check_output(output, args.resume)
    resumed = None
    forced = []
    if args.resume:
        resumed = load_checkpoint(output / LAST)
        args, forced = resume_args(args, resumed.get("args") or {}, given, RUNTIME_FLAGS,
                                    args.output, "output")
    if getattr(args, "model_spec", None):
        arch, family = None, "autoshrink"
    else:
        arch, family = at.arch_from_args(args)
    at.apply_recipe(args, at.IMAGENET_RECIPES, at.DEFAULT_RECIPE["imagenet"][family])
    at.check_family_flags(args, family, NETWORK_FLAGS, given)
    check_args(args)
    for change in forced if env.is_main else ():
        print(f"warning: --force: continuing with {change}", flush=True)
    cuda = env.device.type == "cuda"
    spec = record = None
    if family == "autoshrink":
        if arch is None:
            spec = model_spec_from_args(args, IMAGENET_BASE)
        else:
            spec = ModelSpec(arch.value, resolve_network(arch.value, IMAGENET_BASE,
                                                         network_overrides(args)),
                             TF_L2 if args.regularizer is None else args.regularizer)
        image_size = spec.network.image_size
    else:
        image_size = args.image_size or 224
    aug = AugmentConfig(image_size=image_size, crop_scale=tuple(args.crop_scale),
                        color_jitter=args.color_jitter, reprob=args.reprob,
                        crop_pct=args.crop_pct)
    train, classes = train_loader(args.data, aug, args.batch_size, args.workers, env, args.seed)
    val = val_loader(args.data, aug, args.val_batch_size or args.batch_size, args.workers, env,
                     classes)
    num_classes = spec.network.num_classes if spec else (args.num_classes or len(classes))
    if len(classes) > num_classes:
        raise UserError(f"{args.data} has {len(classes)} classes but the network has "
                        f"{num_classes} outputs: pass --num_classes {len(classes)}")
    torch.manual_seed(args.seed)  # same init everywhere (DDP also broadcasts rank 0's)
    if spec is not None:
        model = spec.build()
        c = complexity(model, (spec.network.in_channels, image_size, image_size))
        cost = {"params": c.params, "params_with_bn": c.params_with_bn, "macs": c.macs,
                "image_size": image_size}
        network = {"model_spec": spec.to_dict()}
        headline = f"{spec.graph!r}\n{c.summary()} at {image_size}px"
        default_wd = 2 * spec.regularizer
    else:
        model, record, cost, headline = at.build_arch_network(arch, args, "imagenet",
                                                              num_classes, image_size)
        network = {"arch_network": record}
        default_wd = 2 * TF_L2
    if args.drop_path > 0:
        hooks = [DropPath(model, args.drop_path, args.epochs) if spec is not None
                 else at.DropPathRamp(model, args.drop_path, args.epochs)]
    else:
        hooks = []
    torch.manual_seed(args.seed + env.rank)  # ranks augment differently

    channels_last = cuda and not args.no_channels_last
    if args.sync_bn and env.distributed and cuda:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(env.device, memory_format=torch.channels_last if channels_last
                     else torch.preserve_format)
    if cuda:
        torch.backends.cudnn.benchmark = True
    ema = ModelEma(model, args.ema_decay) if args.ema_decay > 0 else None

    wd = default_wd if args.weight_decay is None else args.weight_decay
    global_batch = args.batch_size * env.world_size
    lr = scaled_lr(args.lr, global_batch)
    if args.optimizer == "rmsprop_tf":
        params = (weight_decay_groups(model, wd) if not args.weight_decay_all else
                  [{"params": list(model.parameters()), "weight_decay": wd}])
        opt = RMSpropTF(params, lr=lr, decay=args.rmsprop_decay, momentum=args.momentum,
                        eps=args.rmsprop_eps)
    else:
        opt = at.sgd(model, argparse.Namespace(**dict(vars(args), weight_decay=wd)), lr,
                     skip_depthwise=True)
    steps = len(train)
    warmup = round(args.warmup_epochs * steps)
    if args.schedule == "cosine":
        sched = WarmupCosineLR(opt, args.epochs * steps, warmup)
    else:
        sched = at.EpochDecayLR(opt, steps, args.lr_decay, warmup)

    extra = {**network, "args": vars(args), "complexity": cost,
             "data": {"kind": "imagefolder", "classes": list(classes), "mean": list(aug.mean),
                      "std": list(aug.std), "image_size": image_size,
                      "crop_pct": args.crop_pct}}
    if env.is_main:
        print(f"{headline} | {env.world_size} process(es) on {env.device} | recipe "
              f"{args.recipe}: {args.optimizer}, global batch {global_batch}, lr {lr:.4g}, "
              f"weight decay {wd:g}", flush=True)
        output.mkdir(parents=True, exist_ok=True)
        if resumed is None:  # a resumed run keeps its original flags there
            write_args(output, args)
    if resumed is not None and record is not None and resumed.get("arch_network") != record:
        raise UserError(f"{output / LAST} was trained with another architecture or network; "
                        "give the same --arch and network flags, or a new --output")
    criterion = at.AuxiliaryLoss(nn.CrossEntropyLoss(label_smoothing=args.label_smoothing),
                                 args.auxiliary_weight)
    trainer = Trainer(
        model, opt, sched, criterion, LoaderSource(train), lambda: val,
        TrainerConfig(epochs=args.epochs, output=output, amp=cuda and not args.no_amp,
                      channels_last=channels_last, grad_clip=args.grad_clip,
                      eval_every=args.eval_every, progress=not args.quiet),
        env=env, ema=ema, checkpoint_extra=extra, epoch_hooks=hooks)
    final = trainer.fit(resume=args.resume, state=resumed)
    if env.is_main:
        ema = f", EMA {final['ema_top1']:.2f}" if "ema_top1" in final else ""
        print(f"done: final val top-1 {final['top1']:.2f}{ema} after epoch {final['epoch']} "
              f"({final['val_images']} images); params {cost['params'] / 1e6:.6f}M; wrote "
              f"{output / 'final_metrics.json'}", flush=True)
    return final


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    train_imagenet(parser.parse_args(argv), given_flags(parser, argv))


if __name__ == "__main__":
    run_cli(main)
