"""Train a ShrinkCNN (or any CNN cell) on ImageNet with the paper's recipe, ported to PyTorch.

    torchrun --standalone --nproc_per_node 8 evaluation/cnn/train_imagenet.py \
        --model_spec model_spec.json --data /path/to/imagenet --output runs/shrinkcnn-a

Recipe (SPEC §8): TF-style RMSProp (decay 0.9, momentum 0.9, eps 1.0 inside the sqrt),
lr 0.05 per 128 images, cosine over 300 epochs after 10 linear warm-up epochs, weight EMA
0.999, BN momentum 0.001 / eps 1e-3, L2 4e-5 TF-style (weight_decay 8e-5) not on depthwise or
BN, label smoothing 0.1, random-resized crop 0.75-1.0 + flip + colour jitter + random erasing
0.5, val 87.5% bicubic centre crop. bf16 autocast and channels_last on CUDA. --data holds
train/<class>/ and val/<class>/. Every epoch writes last.pt, metrics.jsonl; the run ends with
final_metrics.json; --resume continues from last.pt in --output, keeping the run's recipe (a
changed recipe flag is refused unless --force; RUNTIME_FLAGS may change). ImageNet's val split
is the reporting split, so nothing is selected on it: the reported figures are the final
epoch's (raw and EMA) top-1/top-5, and last.pt after the final epoch is the model.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Set

import torch
from torch import nn

from api.atomic_io import atomic_write_json
from api.checkpoint import LAST, load_checkpoint
from api.complexity import complexity
from api.distributed import cleanup, init_distributed
from api.ema import ModelEma
from api.errors import UserError, run_cli
from api.imagenet import AugmentConfig, train_loader, val_loader
from api.model_spec import IMAGENET_BASE, add_network_args, model_spec_from_args
from api.optim import RMSpropTF, WarmupCosineLR, scaled_lr, weight_decay_groups
from api.trainer import (LoaderSource, Trainer, TrainerConfig, add_run_flags, check_output,
                         given_flags, resume_args)

# Flags a resumed run may change (with api.trainer.RUN_FLAGS): where the data is, how it is
# loaded, how often and in what batches it is evaluated, CUDA execution details.
RUNTIME_FLAGS = {"data", "workers", "eval_every", "val_batch_size", "no_amp",
                 "no_channels_last"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--model_spec", help="model spec JSON written by build_imagenet.py")
    g.add_argument("--graph_path", help="instead of --model_spec: graph file, text form or "
                                        "preset (shrinkcnn-a, shrinkcnn-b)")
    g.add_argument("--regularizer", type=float, default=None,
                   help="L2 weight, TF style (default: the spec's, 4e-5)")
    add_network_args(p, "from --model_spec, else a preset graph, else the ShrinkCNN network")
    g = p.add_argument_group("data")
    g.add_argument("--data", required=True, help="ImageFolder root with train/ and val/")
    g.add_argument("--workers", type=int, default=8, help="DataLoader workers per process")
    g.add_argument("--crop_scale", type=float, nargs=2, default=[0.75, 1.0])
    g.add_argument("--color_jitter", type=float, default=0.4)
    g.add_argument("--reprob", type=float, default=0.5, help="random erasing probability")
    g.add_argument("--crop_pct", type=float, default=0.875, help="val centre crop fraction")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=300)
    g.add_argument("--warmup_epochs", type=float, default=10)
    g.add_argument("--batch_size", type=int, default=128, help="images per process")
    g.add_argument("--val_batch_size", type=int, default=None, help="default: --batch_size")
    g.add_argument("--lr", type=float, default=0.05,
                   help="learning rate per 128 images (scaled by the global batch)")
    g.add_argument("--weight_decay", type=float, default=None,
                   help="PyTorch weight decay (default: 2 x the TF-style regularizer = 8e-5)")
    g.add_argument("--rmsprop_decay", type=float, default=0.9)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--rmsprop_eps", type=float, default=1.0, help="inside the sqrt (TF)")
    g.add_argument("--ema_decay", type=float, default=0.999, help="0 disables the weight EMA")
    g.add_argument("--label_smoothing", type=float, default=0.1)
    g.add_argument("--grad_clip", type=float, default=0.0, help="max grad norm (0: off)")
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


def train_imagenet(args: argparse.Namespace,
                   given: Optional[Set[str]] = None) -> Dict[str, Any]:
    """Train as ``args`` say; ``given``: the flags on the command line (what --resume checks
    against the run's; None: none)."""
    check_args(args)
    env = init_distributed(args.device)
    try:
        return _train(args, env, given or set())
    finally:
        cleanup()


def _train(args: argparse.Namespace, env, given: Set[str]) -> Dict[str, Any]:
    output = Path(args.output)
    check_output(output, args.resume)
    resumed = None
    if args.resume:
        resumed = load_checkpoint(output / LAST)
        args, forced = resume_args(args, resumed.get("args") or {}, given, RUNTIME_FLAGS)
        check_args(args)
        for change in forced if env.is_main else ():
            print(f"warning: --force: continuing with {change}", flush=True)
    cuda = env.device.type == "cuda"
    spec = model_spec_from_args(args, IMAGENET_BASE)
    net = spec.network
    aug = AugmentConfig(image_size=net.image_size, crop_scale=tuple(args.crop_scale),
                        color_jitter=args.color_jitter, reprob=args.reprob,
                        crop_pct=args.crop_pct)
    train, classes = train_loader(args.data, aug, args.batch_size, args.workers, env, args.seed)
    val = val_loader(args.data, aug, args.val_batch_size or args.batch_size, args.workers, env,
                     classes)
    if len(classes) > net.num_classes:
        raise UserError(f"{args.data} has {len(classes)} classes but the network has "
                        f"{net.num_classes} outputs: pass --num_classes {len(classes)}")
    torch.manual_seed(args.seed)  # same init everywhere (DDP also broadcasts rank 0's)
    model = spec.build()
    c = complexity(model, (net.in_channels, net.image_size, net.image_size))
    torch.manual_seed(args.seed + env.rank)  # ranks augment differently

    channels_last = cuda and not args.no_channels_last
    if args.sync_bn and env.distributed and cuda:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(env.device, memory_format=torch.channels_last if channels_last
                     else torch.preserve_format)
    if cuda:
        torch.backends.cudnn.benchmark = True
    ema = ModelEma(model, args.ema_decay) if args.ema_decay > 0 else None

    wd = 2 * spec.regularizer if args.weight_decay is None else args.weight_decay
    global_batch = args.batch_size * env.world_size
    opt = RMSpropTF(weight_decay_groups(model, wd), lr=scaled_lr(args.lr, global_batch),
                    decay=args.rmsprop_decay, momentum=args.momentum, eps=args.rmsprop_eps)
    steps = len(train)
    sched = WarmupCosineLR(opt, args.epochs * steps, round(args.warmup_epochs * steps))

    extra = {"model_spec": spec.to_dict(), "args": vars(args),
             "complexity": {"params": c.params, "params_with_bn": c.params_with_bn,
                            "macs": c.macs, "image_size": net.image_size},
             "data": {"kind": "imagefolder", "classes": list(classes), "mean": list(aug.mean),
                      "std": list(aug.std), "image_size": net.image_size,
                      "crop_pct": args.crop_pct}}
    if env.is_main:
        print(f"{spec.graph!r}\n{c.summary()} at {net.image_size}px | {env.world_size} "
              f"process(es) on {env.device} | global batch {global_batch}, lr "
              f"{scaled_lr(args.lr, global_batch):.4g}, weight decay {wd:g}", flush=True)
        output.mkdir(parents=True, exist_ok=True)
        if resumed is None:  # a resumed run keeps its original flags there
            atomic_write_json(output / "args.json", vars(args))
    trainer = Trainer(
        model, opt, sched, nn.CrossEntropyLoss(label_smoothing=args.label_smoothing),
        LoaderSource(train), lambda: val,
        TrainerConfig(epochs=args.epochs, output=output, amp=cuda and not args.no_amp,
                      channels_last=channels_last, grad_clip=args.grad_clip,
                      eval_every=args.eval_every, progress=not args.quiet),
        env=env, ema=ema, checkpoint_extra=extra)
    final = trainer.fit(resume=args.resume, state=resumed)
    if env.is_main:
        ema = f", EMA {final['ema_top1']:.2f}" if "ema_top1" in final else ""
        print(f"done: final val top-1 {final['top1']:.2f}{ema} after epoch {final['epoch']} "
              f"({final['val_images']} images); wrote {output / 'final_metrics.json'}",
              flush=True)
    return final


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    train_imagenet(parser.parse_args(argv), given_flags(parser, argv))


if __name__ == "__main__":
    run_cli(main)
