"""CIFAR augmentation as batched tensor ops on the training device.

Random crop with zero padding, horizontal flip and cutout, drawn per sample from a seeded
generator that lives on the images' device. No PIL, no DataLoader: the whole split stays on
the GPU and an epoch's augmentation is a handful of kernels. The images are already
normalised, so padding and cutout fill with 0 = the dataset mean colour.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad by ``padding`` and cut a random H x W window per sample."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=x.device, generator=generator)
    rows = dy + torch.arange(h, device=x.device).view(1, h, 1)       # (n, h, 1)
    cols = dx + torch.arange(w, device=x.device).view(1, 1, w)       # (n, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # contiguous NCHW: the gather leaves NHWC strides, and on CPU oneDNN 3.13's weight
    # gradient of a strided 1x1 conv with 2-7 NHWC input channels corrupts memory (torch 2.15).
    # The trainer converts to channels_last itself where that is wanted (CUDA).
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each sample left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per sample, centred anywhere (clipped at borders)."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device, generator=generator)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    half = size // 2
    hole = ((ys >= cy - half) & (ys < cy + size - half)
            & (xs >= cx - half) & (xs < cx + size - half))
    return x * (~hole).unsqueeze(1).to(x.dtype)


class CifarAugment:
    """crop(pad 4) -> flip -> cutout(16), the usual NAS CIFAR-10 recipe."""

    def __init__(self, padding: int = 4, cutout_size: int = 16) -> None:
        self.padding = padding
        self.cutout_size = cutout_size

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = random_crop(x, self.padding, generator)
        x = random_flip(x, generator)
        return cutout(x, self.cutout_size, generator)
