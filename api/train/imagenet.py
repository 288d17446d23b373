"""ImageNet-style data for the final training: an ImageFolder, the recipe's transforms, loaders.

Train: random-resized crop (scale 0.75-1.0), flip, colour jitter, normalise, random erasing
(p 0.5, random-normal fill). Val: resize to ``image_size / crop_pct`` (bicubic) and centre
crop, i.e. the 87.5% centre crop of the paper. Both splits are ``DIR/{train,val}/<class>/*``
with the same class folders. Under DDP every rank reads its own shard: the train sampler
reshuffles by epoch, the val shard is strided so no image is counted twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Tuple

from torch.utils.data import DataLoader, DistributedSampler, Subset

from api.train.distributed import DistEnv
from api.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    image_size: int = 224
    crop_scale: Tuple[float, float] = (0.75, 1.0)
    color_jitter: float = 0.4
    reprob: float = 0.5            # random erasing probability
    crop_pct: float = 0.875        # val centre crop fraction
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD


def train_transform(cfg: AugmentConfig):
    from torchvision import transforms as T

    steps = [T.RandomResizedCrop(cfg.image_size, scale=tuple(cfg.crop_scale),
                                 interpolation=T.InterpolationMode.BILINEAR),
             T.RandomHorizontalFlip()]
    if cfg.color_jitter > 0:
        steps.append(T.ColorJitter(cfg.color_jitter, cfg.color_jitter, cfg.color_jitter))
    steps += [T.ToTensor(), T.Normalize(cfg.mean, cfg.std)]
    if cfg.reprob > 0:
        steps.append(T.RandomErasing(p=cfg.reprob, value="random"))
    return T.Compose(steps)


def val_transform(cfg: AugmentConfig):
    from torchvision import transforms as T

    resize = int(round(cfg.image_size / cfg.crop_pct))
    return T.Compose([T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC),
                      T.CenterCrop(cfg.image_size), T.ToTensor(), T.Normalize(cfg.mean, cfg.std)])


def image_folder(root: str, split: str, transform, classes: Sequence[str] = None):
    """``root/split`` as a torchvision ImageFolder, with one-line errors for bad folders."""
    from torchvision.datasets import ImageFolder

    folder = Path(root) / split
    if not folder.is_dir():
        raise UserError(f"{folder} not found: --data must hold train/<class>/ and val/<class>/ "
                        "(the ImageNet ImageFolder layout)")
    try:
        ds = ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, RuntimeError) as exc:
        raise UserError(f"{folder} is not a usable image folder: {exc}") from exc
    if classes is not None and list(ds.classes) != list(classes):
        raise UserError(f"{folder} has class folders {ds.classes[:3]}... that differ from "
                        f"train/ ({list(classes)[:3]}...): both splits need the same classes")
    return ds


def train_loader(root: str, cfg: AugmentConfig, batch_size: int, workers: int, env: DistEnv,
                 seed: int = 0):
    ds = image_folder(root, "train", train_transform(cfg))
    if len(ds) < batch_size * env.world_size:
        raise UserError(f"{Path(root) / 'train'} holds {len(ds)} images, fewer than one "
                        f"global batch ({batch_size} x {env.world_size} ranks): lower "
                        "--batch_size")
    sampler = DistributedSampler(ds, env.world_size, env.rank, shuffle=True, seed=seed,
                                 drop_last=True)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        pin_memory=env.device.type == "cuda", drop_last=True,
                        persistent_workers=workers > 0)
    return loader, ds.classes


def val_loader(root: str, cfg: AugmentConfig, batch_size: int, workers: int, env: DistEnv,
               classes: Sequence[str] = None) -> DataLoader:
    ds = image_folder(root, "val", val_transform(cfg), classes)
    shard = Subset(ds, range(env.rank, len(ds), env.world_size))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=env.device.type == "cuda", persistent_workers=workers > 0)

