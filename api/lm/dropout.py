"""DARTS's dropouts for recurrent language models: fixed-over-time masks, locked and word dropout.

Every mask is drawn from an optional ``torch.Generator``, so a training run is reproducible
and resumable with its generator's state.
"""
from __future__ import annotations

from typing import Optional

import torch


def mask2d(rows: int, cols: int, keep_prob: float, device=None,
           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A DARTS dropout mask: Bernoulli(keep_prob) / keep_prob, fixed over the time steps."""
    m = torch.rand(rows, cols, generator=generator, device=device)
    return torch.floor(m + keep_prob) / keep_prob


def locked_dropout(x: torch.Tensor, p: float, generator=None) -> torch.Tensor:
    """Variational dropout on a (T, B, D) tensor: one mask per sequence, shared over time."""
    if not p:
        return x
    return x * mask2d(x.size(1), x.size(2), 1.0 - p, x.device, generator).unsqueeze(0)


def embedded_dropout(weight: torch.Tensor, words: torch.Tensor, p: float,
                     generator=None) -> torch.Tensor:
    """Drop whole words (rows of the embedding) with probability ``p`` (DARTS ``dropoute``)."""
    if p:
        keep = mask2d(weight.size(0), 1, 1.0 - p, weight.device, generator)
        weight = weight * keep
    return torch.nn.functional.embedding(words, weight)


__all__ = ["embedded_dropout", "locked_dropout", "mask2d"]
