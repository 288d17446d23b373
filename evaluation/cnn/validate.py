"""Evaluate a training checkpoint: top-1/top-5 on an ImageFolder val split or a CIFAR test split.

    python evaluation/cnn/validate.py --checkpoint runs/shrinkcnn-a/last.pt --ema \
        --data /path/to/imagenet
    python evaluation/cnn/validate.py --checkpoint runs/cifar --data ./data

The checkpoint carries the model (an AutoShrink model spec, or the architecture and network
settings of any cell trained with --arch) and the data settings it was trained with (dataset
kind, normalisation, resolution, crop), so only the data folder is needed. --ema evaluates
the weight EMA instead of the raw weights. The CNN trainers write one checkpoint, last.pt:
after the final epoch it is the model (nothing is selected on the evaluation split).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from api.runs.atomic_io import atomic_write_json
from api.train.checkpoint import LAST, load_checkpoint
from api.datasets import DeviceBatches, load_cifar
from api.train.distributed import DistEnv, resolve_device
from api.errors import UserError, run_cli
from api.train.imagenet import AugmentConfig, val_loader
from api.train.arch_train import build_from_record
from api.spaces.autoshrink_cnn.model_spec import ModelSpec
from api.train.trainer import evaluate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint (last.pt) or a training --output folder (its last.pt)")
    p.add_argument("--data", required=True,
                   help="ImageFolder root (with val/) or the folder holding cifar-10-batches-py")
    p.add_argument("--dataset", choices=["imagefolder", "cifar10", "cifar100"],
                   help="default: what the checkpoint was trained on")
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights")
    p.add_argument("--image_size", type=int, help="default: the training resolution")
    p.add_argument("--crop_pct", type=float, help="ImageFolder centre crop (default: training's)")
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", help="also write the result as JSON here")
    return p


def validate(args: argparse.Namespace) -> Dict[str, Any]:
    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / LAST
    state = load_checkpoint(path)
    info = state.get("data") or {}
    if state.get("arch_network"):  # any cell trained with --arch (api.train.arch_train)
        model = build_from_record(state["arch_network"], source=str(path))
        default_size = info.get("image_size")
    elif "model_spec" in state:  # an AutoShrink cell in its macro network
        spec = ModelSpec.from_dict(state["model_spec"], source=str(path))
        model = spec.build()
        default_size = spec.network.image_size
    else:
        raise UserError(f"{path} is not a checkpoint of train_cifar.py or train_imagenet.py "
                        "(it holds no model spec or architecture)")
    kind = args.dataset or info.get("kind", "imagefolder")
    device = resolve_device(args.device)
    if args.ema and not state.get("ema"):
        raise UserError(f"{path} has no EMA weights (trained with --ema_decay 0)")
    try:
        model.load_state_dict(state["ema"]["module"] if args.ema else state["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: weights do not match its model spec ({first})") from exc
    model.to(device)
    size = args.image_size or info.get("image_size") or default_size
    mean, std = info.get("mean"), info.get("std")
    if kind == "imagefolder":
        cfg = AugmentConfig(image_size=size, crop_pct=args.crop_pct or info.get("crop_pct", 0.875))
        if mean and std:
            cfg.mean, cfg.std = mean, std
        batches = val_loader(args.data, cfg, args.batch_size, args.workers,
                             DistEnv(device=device), info.get("classes"))
        result = evaluate(model, batches, device, amp=device.type == "cuda")
    else:
        data = load_cifar(args.data, kind)
        test = DeviceBatches(data.val_x, data.val_y, mean, std, device)
        result = evaluate(model, test.batches(args.batch_size), device,
                          amp=device.type == "cuda")
    result.update(checkpoint=str(path), weights="ema" if args.ema else "model",
                  epoch=int(state["epoch"]), dataset=kind)
    print(f"{path} ({result['weights']}, epoch {result['epoch']}) on {kind}: "
          f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  "
          f"({result['images']} images)")
    if args.out:
        atomic_write_json(args.out, result)
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    validate(build_parser().parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
