"""What a space's weight-sharing supernet offers the one-shot methods (DARTS, GDAS, ENAS, NAO-WS).

A supernet holds every op of every edge, with shared weights, and its space's architecture
parameters (DARTS's alpha). Methods use only: ``arch_parameters()`` / ``weight_parameters()``
(optimised apart); ``forward(x, mode=...)``: ``"softmax"`` (DARTS: every op weighted by
softmax(alpha)), ``"gumbel"`` with ``tau`` (GDAS: one hard Gumbel-softmax sample per edge,
straight-through, only the sampled op runs) or ``"fixed"`` with ``arch`` (one discrete
architecture through the shared weights: ENAS, NAO-WS, random search with weight sharing);
``edge_weights()`` (softmax(alpha) per edge, named); ``derive()`` (the discrete architecture by
the space's paper's rule, as the space's own type).

Fidelity notes: docs/fidelity/gdas.md.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Dict, Iterator, List

import torch
from torch import nn

MODES = ("softmax", "gumbel", "fixed")


def cpu_channels_last(x: torch.Tensor) -> torch.Tensor:
    """On CPU the search models run channels-last (NHWC): the same maths (equal to 1e-16 in
    float64), 1.7-1.9x faster per search step at DARTS's and GDAS's settings (oneDNN's
    depthwise-conv backward, max-pool and BN are several times faster there; bench/README.md).
    Other devices keep the input's layout (unmeasured on GPU, where fp32 NHWC can be slower)."""
    if x.device.type == "cpu" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def gumbel_hard(alpha: torch.Tensor, tau: float, generator: torch.Generator = None):
    """GDAS's sample for a (edges, ops) alpha: (hard one-hot with the straight-through
    gradient of the soft sample, sampled indices). The Gumbel noise is drawn as AutoDL-Projects
    draws it (-log of an Exp(1) tensor like alpha, so a generator seeded as the global RNG gives
    AutoDL's very sample), again until no sample is infinite or NaN."""
    logp = torch.log_softmax(alpha, dim=-1)
    while True:
        gumbels = -torch.empty_like(alpha).exponential_(generator=generator).log()
        probs = torch.softmax((logp + gumbels) / tau, dim=-1)
        if torch.isfinite(probs).all() and torch.isfinite(gumbels).all():
            break
    index = probs.argmax(dim=-1, keepdim=True)
    one_hot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
    return one_hot - probs.detach() + probs, index.squeeze(-1)


class Supernet(nn.Module):
    """Base of the spaces' supernets (see the module doc)."""

    def arch_parameters(self) -> List[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name.startswith("alpha")]

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        return (p for name, p in self.named_parameters() if not name.startswith("alpha"))

    @abstractmethod
    def edge_weights(self) -> Dict[str, torch.Tensor]:
        """softmax(alpha) per cell type: name -> (edges, ops) tensor (detached)."""

    @abstractmethod
    def derive(self) -> Any:
        """The discrete architecture, in the space's own type."""
