"""DARTS's fixed networks for retraining a genotype: ``NetworkCIFAR`` and ``NetworkImageNet``.

Re-implemented from DARTS's ``cnn/model.py`` (quark0/darts) with the same layers, order and
module names, so parameter counts are exactly DARTS's and its released state dicts load by name.

Forward: ``model(x)`` returns the logits, or ``(logits, logits_aux)`` while training a model
built with ``auxiliary=True``; trainers add ``auxiliary_weight * loss(logits_aux)``. Drop-path:
set ``model.drop_path_prob`` (ramped by the trainer); node inputs through any op but a stride-1
``skip_connect`` are dropped per sample, as in DARTS.

Fidelity notes (adaptive pooling, odd sizes): docs/fidelity/darts.md.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.darts.genotype import Genotype, validate
from api.spaces.darts.ops import OPS, FactorizedReduce, Identity, ReLUConvBN

#: DARTS's default auxiliary loss weight (``--auxiliary_weight 0.4``).
AUXILIARY_WEIGHT = 0.4


def drop_path(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Zero whole samples of ``x`` with probability ``prob``; rescale the kept ones."""
    if prob <= 0.0:
        return x
    keep = 1.0 - prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """One normal or reduction cell built from a genotype (DARTS's fixed-network cell)."""

    def __init__(self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        # the previous cell halved the resolution: bring c_{k-2} down to it as well
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        pairs = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self._steps = len(pairs) // 2
        self._concat = list(concat)
        self.multiplier = len(self._concat)
        self._indices = [idx for _, idx in pairs]
        self._ops = nn.ModuleList(
            OPS[op](C, 2 if reduction and idx < 2 else 1, True) for op, idx in pairs)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        use_drop = self.training and drop_prob > 0.0
        for i in range(self._steps):
            total = 0
            for j in (2 * i, 2 * i + 1):
                op = self._ops[j]
                h = op(states[self._indices[j]])
                if use_drop and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        return torch.cat([states[k] for k in self._concat], dim=1)


def _pool_to_2x2(x: torch.Tensor, stride: int) -> torch.Tensor:
    """DARTS's AvgPool2d(5, stride) when it gives 2x2 (its intended input size), else adaptive."""
    h, w = x.shape[-2:]
    if h >= 5 and w >= 5 and (h - 5) // stride + 1 == 2 and (w - 5) // stride + 1 == 2:
        return F.avg_pool2d(x, 5, stride=stride, padding=0, count_include_pad=False)
    return F.adaptive_avg_pool2d(x, 2)


class AuxiliaryHeadCIFAR(nn.Module):
    """ReLU -> avg pool to 2x2 -> 1x1 conv 128 -> BN -> ReLU -> 2x2 conv 768 -> BN -> ReLU ->
    linear (input 8x8 at 32x32 images)."""

    pool_stride = 3

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),  # DARTS: in place, on a tensor the next cells still read
            nn.Identity(),  # the pooling (index 1 in DARTS's Sequential): see _pool_to_2x2
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pool_to_2x2(self.features[0](x), self.pool_stride)
        for layer in list(self.features)[2:]:
            x = layer(x)
        return self.classifier(x.flatten(1))


class AuxiliaryHeadImageNet(AuxiliaryHeadCIFAR):
    """As the CIFAR head with pooling stride 2 (input 7x7 at 224x224 images) and, as in DARTS's
    released code and paper experiments, no BatchNorm after the 768-channel conv."""

    pool_stride = 2

    def __init__(self, C: int, num_classes: int) -> None:
        nn.Module.__init__(self)
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),  # DARTS: in place, on a tensor the next cells still read
            nn.Identity(),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)


Output = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


class _Network(nn.Module):
    """Shared settings, cell stacking, heads and forward of the two DARTS networks: a
    subclass calls ``__init__``, builds its stem, then :meth:`_build_cells` and
    :meth:`_build_heads` (the order DARTS creates, and so initialises, the modules in)."""

    def __init__(self, C: int, auxiliary: bool, genotype: Any, drop_path_prob: float) -> None:
        super().__init__()
        genotype = validate(genotype)
        self._C = C
        self._auxiliary = auxiliary
        self.drop_path_prob = drop_path_prob
        self.auxiliary_weight = AUXILIARY_WEIGHT
        self.genotype = genotype

    def _build_cells(self, genotype: Genotype, C: int, layers: int, C_stem_prev_prev: int,
                     C_stem_prev: int, reduction_prev: bool) -> int:
        self._layers = layers
        self.auxiliary_index = 2 * layers // 3
        C_prev_prev, C_prev, C_curr = C_stem_prev_prev, C_stem_prev, C
        self.cells = nn.ModuleList()
        self._C_to_auxiliary = None
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == self.auxiliary_index:
                self._C_to_auxiliary = C_prev
        return C_prev

    def _build_heads(self, C_prev: int, num_classes: int, auxiliary_head: type) -> None:
        """The auxiliary head (when asked for) after cell ``auxiliary_index``, then global
        pooling and the classifier."""
        if self._auxiliary:
            self.auxiliary_head = auxiliary_head(self._C_to_auxiliary, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def _stem(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> Output:
        logits_aux: Optional[torch.Tensor] = None
        s0, s1 = self._stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.auxiliary_index and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        if logits_aux is not None:
            return logits, logits_aux
        return logits

    def extra_repr(self) -> str:
        return (f"C={self._C}, layers={self._layers}, auxiliary={self._auxiliary}, "
                f"drop_path_prob={self.drop_path_prob}")


class NetworkCIFAR(_Network):
    """DARTS's CIFAR network: 3x3 conv stem (3*C channels, stride 1), then the cells.

    ``NetworkCIFAR(C, num_classes, layers, auxiliary, genotype)``, DARTS's argument order.
    """

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Any,
                 drop_path_prob: float = 0.0) -> None:
        super().__init__(C, auxiliary, genotype, drop_path_prob)
        C_stem = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_stem))
        C_prev = self._build_cells(self.genotype, C, layers, C_stem, C_stem,
                                   reduction_prev=False)
        self._build_heads(C_prev, num_classes, AuxiliaryHeadCIFAR)

    def _stem(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return s, s


class NetworkImageNet(_Network):
    """DARTS's ImageNet (mobile setting) network: ``stem0`` (two stride-2 3x3 convs, C/2 then
    C channels) and ``stem1`` (a third stride-2 conv), so the cells start at 1/8 resolution with
    c_{k-2} at 1/4 (the first cell reduces it with a FactorizedReduce)."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Any,
                 drop_path_prob: float = 0.0) -> None:
        super().__init__(C, auxiliary, genotype, drop_path_prob)
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),  # DARTS: in place on s0 (same values: cells ReLU first)
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        C_prev = self._build_cells(self.genotype, C, layers, C, C, reduction_prev=True)
        self._build_heads(C_prev, num_classes, AuxiliaryHeadImageNet)

    def _stem(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)
