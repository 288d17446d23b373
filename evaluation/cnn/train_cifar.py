"""Train a found cell on CIFAR-10 from scratch (the CIFAR table's final training).

    python evaluation/cnn/train_cifar.py --graph_path autoshrink/graph-best --data ./data \
        --output runs/cifar-best

Recipe (the common NAS one, DARTS-like): SGD lr 0.025, momentum 0.9, weight decay 3e-4 (not
on BN/biases), cosine to 0 over 600 epochs, batch 96, random crop (pad 4) + flip + cutout 16,
grad clip 5, optional drop-path (--drop_path 0.2 as DARTS; off by default). The whole split
lives on the device as a tensor and is augmented there; CUDA adds bf16 autocast and
channels_last. CIFAR has no validation split: the test split is evaluated every --eval_every
epochs and at the end, the final epoch's test top-1 is the reported figure (as in DARTS), and
no checkpoint is selected by test accuracy (last.pt after the final epoch is the model).
--resume keeps the run's recipe: a changed recipe flag is refused unless --force; runtime
flags (RUNTIME_FLAGS) may change.

Network: the cell inside a CIFAR macro network (api.model_spec.CIFAR_BASE): stem Conv3x3
stride 1 with 48 channels, three stages of 4 cells with node widths 16 x [3, 6, 12] =
[48, 96, 192], max-pool 2 at the first cell of stages 2-3 (32/16/8 px), residuals, no head
conv, GAP -> FC. A search's graph-best keeps only its activation from the proxy network;
presets keep their activation (ShrinkCNN-B: swish). Network flags override all of this.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Set

import torch
from torch import nn

from api.atomic_io import atomic_write_json
from api.augment import CifarAugment
from api.checkpoint import LAST, load_checkpoint
from api.complexity import complexity
from api.datasets import DeviceBatches, load_cifar
from api.distributed import DistEnv, resolve_device
from api.drop_path import DropPath
from api.ema import ModelEma
from api.errors import UserError, run_cli
from api.model_spec import CIFAR_BASE, add_network_args, model_spec_from_args
from api.optim import WarmupCosineLR, weight_decay_groups
from api.trainer import (DeviceSource, Trainer, TrainerConfig, add_run_flags, check_output,
                         given_flags, resume_args)

# Flags a resumed run may change (with api.trainer.RUN_FLAGS): where the data is, how often
# and in what batches it is evaluated, and CUDA execution details. Every other flag is recipe.
RUNTIME_FLAGS = {"data", "eval_every", "val_batch_size", "no_amp", "no_channels_last"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--graph_path", required=True,
                   help="graph file (graph-best, .json twin), text form or preset")
    add_network_args(p, "the CIFAR macro network (scale 3 6 12, pool 1 2 2, replicate 4 4 4, "
                        "stem 48/1, no head) with the graph's activation")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="./data",
                   help="folder holding cifar-10-batches-py (downloaded there if absent)")
    g.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"])
    g.add_argument("--padding", type=int, default=4, help="random-crop padding (0: off)")
    g.add_argument("--cutout", type=int, default=16, help="cutout square size (0: off)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=600)
    g.add_argument("--batch_size", type=int, default=96)
    g.add_argument("--val_batch_size", type=int, default=500)
    g.add_argument("--lr", type=float, default=0.025)
    g.add_argument("--min_lr", type=float, default=0.0, help="cosine floor")
    g.add_argument("--warmup_epochs", type=float, default=0.0)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight_decay", type=float, default=3e-4)
    g.add_argument("--grad_clip", type=float, default=5.0, help="max grad norm (0: off)")
    g.add_argument("--drop_path", type=float, default=0.0,
                   help="final drop-path probability of cell node outputs, ramped from 0")
    g.add_argument("--label_smoothing", type=float, default=0.0)
    g.add_argument("--ema_decay", type=float, default=0.0, help="weight EMA (0: off)")
    add_run_flags(p, "./runs/cifar")
    return p


def check_args(args: argparse.Namespace) -> None:
    for flag in ("epochs", "batch_size", "val_batch_size", "eval_every"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.lr <= 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    if not 0.0 <= args.drop_path < 1.0:
        raise UserError(f"--drop_path must be in [0, 1), got {args.drop_path}")
    if args.padding < 0 or args.cutout < 0 or args.warmup_epochs < 0:
        raise UserError("--padding, --cutout and --warmup_epochs must not be negative")


def train_cifar(args: argparse.Namespace, given: Optional[Set[str]] = None) -> Dict[str, Any]:
    """Train as ``args`` say; ``given``: the flags on the command line (what --resume checks
    against the run's; None: none)."""
    check_args(args)
    output = Path(args.output)
    check_output(output, args.resume)
    resumed = None
    if args.resume:
        resumed = load_checkpoint(output / LAST)
        args, forced = resume_args(args, resumed.get("args") or {}, given or set(),
                                   RUNTIME_FLAGS)
        check_args(args)
        for change in forced:
            print(f"warning: --force: continuing with {change}", flush=True)
    env = DistEnv(device=resolve_device(args.device))
    cuda = env.device.type == "cuda"
    torch.manual_seed(args.seed)

    data = load_cifar(args.data, args.dataset)
    args.num_classes = args.num_classes or data.num_classes
    spec = model_spec_from_args(args, CIFAR_BASE, inherit=("activation",))
    net = spec.network
    if net.num_classes < data.num_classes:
        raise UserError(f"--num_classes {net.num_classes} < {data.num_classes} classes")
    if net.image_size != data.train_x.shape[-1]:
        raise UserError(f"--image_size must be {data.train_x.shape[-1]} for {args.dataset}")
    model = spec.build()
    c = complexity(model, (net.in_channels, net.image_size, net.image_size))

    channels_last = cuda and not args.no_channels_last
    model = model.to(env.device, memory_format=torch.channels_last if channels_last
                     else torch.preserve_format)
    if cuda:
        torch.backends.cudnn.benchmark = True
    x = data.train_x.astype("float64") / 255.0
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    train = DeviceBatches(data.train_x, data.train_y, mean, std, env.device)
    test = DeviceBatches(data.val_x, data.val_y, mean, std, env.device)
    source = DeviceSource(train, args.batch_size, args.seed,
                          CifarAugment(args.padding, args.cutout))

    opt = torch.optim.SGD(weight_decay_groups(model, args.weight_decay, skip_depthwise=False),
                          lr=args.lr, momentum=args.momentum)
    steps = len(source)
    sched = WarmupCosineLR(opt, args.epochs * steps, round(args.warmup_epochs * steps),
                           args.min_lr / args.lr)
    hooks = [DropPath(model, args.drop_path, args.epochs)] if args.drop_path > 0 else []
    ema = ModelEma(model, args.ema_decay) if args.ema_decay > 0 else None
    extra = {"model_spec": spec.to_dict(), "args": vars(args),
             "complexity": {"params": c.params, "params_with_bn": c.params_with_bn,
                            "macs": c.macs, "image_size": net.image_size},
             "data": {"kind": args.dataset, "classes": list(data.classes),
                      "mean": mean.tolist(), "std": std.tolist(), "image_size": net.image_size}}
    print(f"{spec.graph!r}\n{c.summary()} at {net.image_size}px on {env.device} | "
          f"{len(train)} train / {len(test)} test images", flush=True)
    output.mkdir(parents=True, exist_ok=True)
    if resumed is None:  # a resumed run keeps its original flags there
        atomic_write_json(output / "args.json", vars(args))
    trainer = Trainer(
        model, opt, sched, nn.CrossEntropyLoss(label_smoothing=args.label_smoothing), source,
        lambda: test.batches(args.val_batch_size),
        TrainerConfig(epochs=args.epochs, output=output, amp=cuda and not args.no_amp,
                      channels_last=channels_last, grad_clip=args.grad_clip,
                      eval_every=args.eval_every, progress=not args.quiet),
        env=env, ema=ema, checkpoint_extra=extra, epoch_hooks=hooks)
    final = trainer.fit(resume=args.resume, state=resumed)
    ema = f", EMA {final['ema_top1']:.2f}" if "ema_top1" in final else ""
    print(f"done: final test top-1 {final['top1']:.2f} (top-5 {final['top5']:.2f}{ema}) after "
          f"epoch {final['epoch']}; wrote {output / 'final_metrics.json'}", flush=True)
    return final


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    train_cifar(parser.parse_args(argv), given_flags(parser, argv))


if __name__ == "__main__":
    run_cli(main)
