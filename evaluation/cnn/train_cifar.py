"""Train any CNN architecture on CIFAR-10/100 from scratch (the CIFAR table's final training).

    python evaluation/cnn/train_cifar.py --arch autoshrink/graph-best --data ./data \
        --output runs/cifar-best
    python evaluation/cnn/train_cifar.py --arch darts-v2 --data ./data --output runs/darts-v2
    python evaluation/cnn/train_cifar.py --arch '|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+...' \
        --data ./data --output runs/nb201-cell

--arch (alias --graph_path) takes a file any search wrote, a zoo preset or a space string; the
network and the default recipe (``autoshrink``, ``darts`` or ``nas-bench-201``) follow the
architecture's space (api.train.arch_train), and --recipe or any recipe flag overrides them.
The split lives and is augmented on the device. The final epoch's test top-1 is the reported
figure; nothing is selected on the test split. --resume keeps the run's recipe and architecture.

See docs/evaluation.md.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Set

import numpy as np
import torch
from torch import nn

from api.train import arch_train as at
from api.train.augment import CifarAugment
from api.train.checkpoint import LAST, load_checkpoint
from api.spaces.complexity import complexity
from api.datasets import DeviceBatches, add_download_flag, balanced_indices, load_cifar
from api.train.distributed import cleanup, init_distributed
from api.train.drop_path import DropPath
from api.train.ema import ModelEma
from api.errors import UserError, run_cli
from api.spaces.autoshrink_cnn.model_spec import (CIFAR_BASE, NETWORK_FLAGS, TF_L2, ModelSpec, add_network_args,
                            network_overrides, resolve_network)
from api.train.optim import WarmupCosineLR
from api.train.trainer import (DeviceSource, Trainer, TrainerConfig, add_run_flags, check_output)
from api.runs.run_folder import given_flags, resume_args, write_args

# Flags a resumed run may change (with api.runs.run_folder.RUN_FLAGS): where the data is, how often
# and in what batches it is evaluated, and CUDA execution details. Every other flag is recipe.
RUNTIME_FLAGS = {"data", "download", "eval_every", "val_batch_size", "no_amp", "no_channels_last"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=at.HelpFormatter)
    at.add_arch_args(p)
    add_network_args(p, "AutoShrink cells only: the CIFAR macro network (scale 3 6 12, pool "
                        "1 2 2, replicate 4 4 4, stem 48/1, no head) with the graph's "
                        "activation")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="./data",
                   help="folder holding cifar-10-batches-py")
    add_download_flag(g)
    g.add_argument("--train_size", type=int, default=0,
                   help="train on N images of the training split (class-balanced, seeded by "
                        "--seed; 0: all): for quick trials")
    g.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"])
    g.add_argument("--padding", type=int, help="random-crop padding (0: off; recipes: 4)")
    g.add_argument("--cutout", type=int,
                   help="cutout square size (0: off; recipes: 16, nas-bench-201 0)")
    g = p.add_argument_group(
        "optimisation", "unset flags come from --recipe (see the module docstring)")
    at.add_recipe_flag(g, at.CIFAR_RECIPES, at.DEFAULT_RECIPE["cifar"])
    g.add_argument("--epochs", type=int, help="recipes: 600, nas-bench-201 200")
    g.add_argument("--batch_size", type=int, help="recipes: 96, nas-bench-201 256")
    g.add_argument("--val_batch_size", type=int, default=500)
    g.add_argument("--lr", type=float, help="recipes: 0.025, nas-bench-201 0.1")
    g.add_argument("--min_lr", type=float, help="cosine floor (recipes: 0)")
    g.add_argument("--warmup_epochs", type=float, help="recipes: 0")
    g.add_argument("--momentum", type=float, help="recipes: 0.9")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum (nas-bench-201 only)")
    g.add_argument("--weight_decay", type=float,
                   help="recipes: 3e-4, nas-bench-201 5e-4")
    g.add_argument("--weight_decay_all", action=argparse.BooleanOptionalAction, default=None,
                   help="decay every parameter, BN and biases included (darts, "
                        "nas-bench-201), not only conv/linear weights (autoshrink)")
    g.add_argument("--grad_clip", type=float,
                   help="max grad norm (0: off; recipes: 5, nas-bench-201 0)")
    g.add_argument("--drop_path", "--drop_path_prob", dest="drop_path", type=float,
                   help="final drop-path probability, ramped linearly from 0 over the epochs "
                        "(darts 0.2, others 0)")
    g.add_argument("--auxiliary_weight", type=float,
                   help="weight of the auxiliary head's loss, 0: no auxiliary head (darts "
                        "0.4; DARTS-family networks only)")
    g.add_argument("--label_smoothing", type=float, help="recipes: 0")
    g.add_argument("--ema_decay", type=float, help="weight EMA (0: off; recipes: 0)")
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
    if args.auxiliary_weight < 0:
        raise UserError(f"--auxiliary_weight must not be negative, got {args.auxiliary_weight}")


class RankSlice:
    """Under torchrun: each rank trains on its share (``x[rank::world]``) of every global
    batch of ``source`` (the same order and augmentation on every rank), so ``--batch_size``
    is the global batch, as NAO's multi-GPU scripts (DataParallel) mean it."""

    def __init__(self, source: DeviceSource, rank: int, world: int) -> None:
        self.source, self.rank, self.world = source, rank, world

    def __len__(self) -> int:
        return len(self.source)

    def batches(self, epoch: int):
        for x, y in self.source.batches(epoch):
            yield x[self.rank::self.world], y[self.rank::self.world]


def train_cifar(args: argparse.Namespace, given: Optional[Set[str]] = None) -> Dict[str, Any]:
    """Train as ``args`` say; ``given``: the flags on the command line (what --resume checks
    against the run's; None: none). Under torchrun (``WORLD_SIZE`` > 1) it trains with DDP
    (gloo on CPU, NCCL on CUDA): ``--batch_size`` is split over the processes, the test split
    is evaluated in shards, rank 0 writes."""
    env = init_distributed(args.device)
    try:
        return _train_cifar(args, given, env)
    finally:
        cleanup()


def _train_cifar(args: argparse.Namespace, given: Optional[Set[str]], env) -> Dict[str, Any]:
    given = given or set()
    output = Path(args.output)
    check_output(output, args.resume)
    resumed = None
    forced = []
    if args.resume:
        resumed = load_checkpoint(output / LAST)
        args, forced = resume_args(args, resumed.get("args") or {}, given, RUNTIME_FLAGS,
                                    args.output, "output")
    arch, family = at.arch_from_args(args)
    at.apply_recipe(args, at.CIFAR_RECIPES, at.DEFAULT_RECIPE["cifar"][family])
    at.check_family_flags(args, family, NETWORK_FLAGS, given)
    check_args(args)
    for change in forced if env.is_main else ():
        print(f"warning: --force: continuing with {change}", flush=True)
    if args.batch_size % env.world_size:
        raise UserError(f"--batch_size {args.batch_size} does not split over "
                        f"{env.world_size} processes")
    cuda = env.device.type == "cuda"
    torch.manual_seed(args.seed)

    data = load_cifar(args.data, args.dataset, download=args.download or None)
    if args.train_size:  # a class-balanced, seeded subset: tiny trial runs
        if not 0 < args.train_size <= len(data.train_y):
            raise UserError(f"--train_size must be in 1..{len(data.train_y)}, got "
                            f"{args.train_size}")
        keep = np.sort(balanced_indices(data.train_y, args.train_size,
                                        np.random.default_rng(args.seed)))
        data = replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])
    args.num_classes = args.num_classes or data.num_classes
    image_size = data.train_x.shape[-1]
    if args.num_classes < data.num_classes:
        raise UserError(f"--num_classes {args.num_classes} < {data.num_classes} classes")
    if family == "autoshrink":
        spec = ModelSpec(arch.value, resolve_network(arch.value, CIFAR_BASE,
                                                     network_overrides(args), ("activation",)),
                         TF_L2)
        net = spec.network
        if net.image_size != image_size:
            raise UserError(f"--image_size must be {image_size} for {args.dataset}")
        model = spec.build()
        c = complexity(model, (net.in_channels, net.image_size, net.image_size))
        cost = {"params": c.params, "params_with_bn": c.params_with_bn, "macs": c.macs,
                "image_size": net.image_size}
        network = {"model_spec": spec.to_dict()}
        headline = f"{spec.graph!r}\n{c.summary()} at {net.image_size}px"
        hooks = [DropPath(model, args.drop_path, args.epochs)] if args.drop_path > 0 else []
    else:
        if args.image_size not in (None, image_size):
            raise UserError(f"--image_size must be {image_size} for {args.dataset}")
        model, record, cost, headline = at.build_arch_network(arch, args, args.dataset,
                                                              args.num_classes, image_size)
        network = {"arch_network": record}
        hooks = ([at.DropPathRamp(model, args.drop_path, args.epochs)]
                 if args.drop_path > 0 else [])

    channels_last = cuda and not args.no_channels_last
    model = model.to(env.device, memory_format=torch.channels_last if channels_last
                     else torch.preserve_format)
    if cuda:
        torch.backends.cudnn.benchmark = True
    x = data.train_x.astype("float64") / 255.0
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    train = DeviceBatches(data.train_x, data.train_y, mean, std, env.device)
    shard = slice(env.rank, None, env.world_size)  # this rank's test images
    test = DeviceBatches(data.val_x[shard], data.val_y[shard], mean, std, env.device)
    source = DeviceSource(train, args.batch_size, args.seed,
                          CifarAugment(args.padding, args.cutout))
    if env.distributed:
        source = RankSlice(source, env.rank, env.world_size)

    opt = at.sgd(model, args, args.lr)
    steps = len(source)
    sched = WarmupCosineLR(opt, args.epochs * steps, round(args.warmup_epochs * steps),
                           args.min_lr / args.lr)
    ema = ModelEma(model, args.ema_decay) if args.ema_decay > 0 else None
    extra = {**network, "args": vars(args), "complexity": cost,
             "data": {"kind": args.dataset, "classes": list(data.classes),
                      "mean": mean.tolist(), "std": std.tolist(), "image_size": image_size}}
    if env.is_main:
        print(f"{headline} on {env.device} x {env.world_size} | recipe {args.recipe} | "
              f"{len(train)} train / {len(data.val_y)} test images", flush=True)
    output.mkdir(parents=True, exist_ok=True)
    if resumed is None:  # a resumed run keeps its original flags there
        if env.is_main:
            write_args(output, args)
    elif family != "autoshrink" and resumed.get("arch_network") != record:
        raise UserError(f"{output / LAST} was trained with another architecture or network; "
                        "give the same --arch and network flags, or a new --output")
    criterion = at.AuxiliaryLoss(nn.CrossEntropyLoss(label_smoothing=args.label_smoothing),
                                 args.auxiliary_weight)
    trainer = Trainer(
        model, opt, sched, criterion, source, lambda: test.batches(args.val_batch_size),
        TrainerConfig(epochs=args.epochs, output=output, amp=cuda and not args.no_amp,
                      channels_last=channels_last, grad_clip=args.grad_clip,
                      eval_every=args.eval_every, progress=not args.quiet),
        env=env, ema=ema, checkpoint_extra=extra, epoch_hooks=hooks)
    final = trainer.fit(resume=args.resume, state=resumed)
    ema = f", EMA {final['ema_top1']:.2f}" if "ema_top1" in final else ""
    if env.is_main:
        print(f"done: final test top-1 {final['top1']:.2f} (top-5 {final['top5']:.2f}{ema}) after "
              f"epoch {final['epoch']}; params {cost['params'] / 1e6:.6f}M; wrote "
              f"{output / 'final_metrics.json'}", flush=True)
    return final


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    train_cifar(parser.parse_args(argv), given_flags(parser, argv))


if __name__ == "__main__":
    run_cli(main)
