"""NAO's own fixed networks (``NASNetworkCIFAR`` / ``NASNetworkImageNet``), re-implemented from
NAO_V1's ``model.py`` / ``operations.py`` (renqianluo/NAO_pytorch), for the ``nao`` space:
NAONet-A's ops (NAO's 11-op space) have no DARTS equivalent, so its cell is built in the
network NAO trained it in.

CIFAR: 3x3 conv stem to 3C, ``3N + 2`` cells with reductions at ``N`` and ``2N + 1``, global
pooling, dropout, linear; auxiliary head after cell ``2N + 1``. ImageNet: NAO's two stems. A
cell concatenates every loose end, cell inputs included. Ops 0-15 as NAO's ``operations.py``.
``forward`` returns the logits, or ``(logits, logits_aux)`` while training with the auxiliary
head. Parameter count: every parameter except the auxiliary head's.

Fidelity notes (drop-path, counts): docs/fidelity/nao.md.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.darts.network import drop_path
from api.spaces.enas_micro.arch import NODES, MicroArch


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding,
                                   bias=False),
                         nn.BatchNorm2d(c_out))


class FactorizedConv(nn.Sequential):
    """1xk conv striding columns, then kx1 conv striding rows (NAO's ops 8 and 9)."""

    def __init__(self, c: int, k: int, stride: int) -> None:
        p = k // 2
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c, c, (1, k), stride=(1, stride), padding=(0, p), bias=False),
                         nn.BatchNorm2d(c),
                         nn.ReLU(inplace=False),
                         nn.Conv2d(c, c, (k, 1), stride=(stride, 1), padding=(p, 0), bias=False),
                         nn.BatchNorm2d(c))


class SepConv(nn.Sequential):
    def __init__(self, c: int, k: int, stride: int) -> None:
        p = k // 2
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c, c, k, stride=stride, padding=p, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False),
                         nn.BatchNorm2d(c),
                         nn.ReLU(inplace=False),
                         nn.Conv2d(c, c, k, padding=p, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False),
                         nn.BatchNorm2d(c))


class FactorizedReduce(nn.Module):
    """Halve the resolution: two 1x1 stride-2 convs to C/2 each, the second on the input
    shifted by one pixel, concatenated, BN (no ReLU inside: callers add it where NAO does)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"factorized reduce needs an even width, got {c_out}")
        self.path1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.path2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.path1(x), self.path2(shifted)], dim=1))


class PadPool(nn.Module):
    """A 2x2 pool after padding right and bottom by one (NAO's ops 10 and 13)."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.pad(x, (0, 1, 0, 1)))


def make_op(op: int, c: int, stride: int) -> nn.Module:
    """NAO's op ``op`` at width ``c``; identities at stride 2 become factorized reduces."""
    if op == 0:
        return SepConv(c, 3, stride)
    if op == 1:
        return SepConv(c, 5, stride)
    if op == 2:
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if op in (3, 11):
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if op in (4, 5):
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if op == 6:
        return ReLUConvBN(c, c, 1, stride, 0)
    if op == 7:
        return ReLUConvBN(c, c, 3, stride, 1)
    if op == 8:
        return FactorizedConv(c, 3, stride)
    if op == 9:
        return FactorizedConv(c, 7, stride)
    if op == 10:
        return PadPool(nn.MaxPool2d(2, stride=stride, padding=0))
    if op == 12:
        return nn.MaxPool2d(5, stride=stride, padding=2)
    if op == 13:
        return PadPool(nn.AvgPool2d(2, stride=stride, padding=0))
    if op == 14:
        return nn.AvgPool2d(3, stride=stride, padding=1)
    if op == 15:
        return nn.AvgPool2d(5, stride=stride, padding=2)
    raise ValueError(f"unknown NAO op {op}")


class Cell(nn.Module):
    def __init__(self, cell: Sequence[int], prev: Sequence[Tuple[int, int]], c: int,
                 reduction: bool, depth: float) -> None:
        """``prev``: (resolution, channels) of c_{k-2} and c_{k-1}."""
        super().__init__()
        (hw0, c0), (hw1, c1) = prev
        self.depth = depth
        self.reduce_s0 = hw0 != hw1
        if self.reduce_s0:
            if hw0 != 2 * hw1:
                raise ValueError(f"cell inputs at {hw0} and {hw1}: not a reduction")
            self.pre0: Optional[nn.Module] = nn.Sequential(nn.ReLU(inplace=False),
                                                           FactorizedReduce(c0, c))
        else:
            self.pre0 = ReLUConvBN(c0, c, 1) if c0 != c else None
        self.pre1 = ReLUConvBN(c1, c, 1) if c1 != c else None
        stride = 2 if reduction else 1
        hw = [hw1, hw1]
        self.index: List[int] = []
        self.ops = nn.ModuleList()
        for n in range(NODES):
            for slot in (0, 2):
                idx, op = cell[4 * n + slot], cell[4 * n + slot + 1]
                s = stride if idx < 2 else 1
                self.index.append(idx)
                self.ops.append(make_op(op, c, s))
            hw.append(hw1 // stride)
        used = set(self.index)
        self.concat = [i for i in range(NODES + 2) if i not in used]
        self.out_hw = min(hw[i] for i in self.concat)
        self.final = nn.ModuleDict({str(i): FactorizedReduce(c, c) for i in self.concat
                                    if hw[i] > self.out_hw})
        self.out_channels = c * len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        if self.pre0 is not None:
            s0 = self.pre0(s0)
        if self.pre1 is not None:
            s1 = self.pre1(s1)
        states = [s0, s1]
        prob = drop_prob * self.depth if self.training else 0.0
        for n in range(NODES):
            total = 0
            for j in (2 * n, 2 * n + 1):
                total = total + drop_path(self.ops[j](states[self.index[j]]), prob)
            states.append(total)
        out = [self.final[str(i)](states[i]) if str(i) in self.final else states[i]
               for i in self.concat]
        return torch.cat(out, dim=1)


class AuxHead(nn.Module):
    """ReLU, avg pool 5 (stride 3 on CIFAR's 8x8, 2 on ImageNet's 7x7) to 2x2, conv1x1 to 128,
    BN, ReLU, conv2x2 to 768, BN, ReLU, linear; adaptive 2x2 pooling at other sizes."""

    def __init__(self, c: int, classes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.features = nn.Sequential(nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128),
                                      nn.ReLU(inplace=True), nn.Conv2d(128, 768, 2, bias=False),
                                      nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        h, w = x.shape[-2:]
        if h >= 5 and w >= 5 and (h - 5) // self.stride + 1 == 2 == (w - 5) // self.stride + 1:
            x = F.avg_pool2d(x, 5, stride=self.stride, count_include_pad=False)
        else:
            x = F.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.features(x).flatten(1))


class NAONetwork(nn.Module):
    """NAO's network for ``arch`` (op ids 0..15): ``imagenet=False`` is ``NASNetworkCIFAR``
    (``input_hw`` 32, or 16 for ImageNet16-120), ``True`` is ``NASNetworkImageNet`` (224)."""

    def __init__(self, arch: MicroArch, classes: int, C: int = 36, N: int = 6,
                 auxiliary: bool = False, keep_prob: float = 1.0, imagenet: bool = False,
                 input_hw: int = 32, drop_path_prob: float = 0.0) -> None:
        super().__init__()
        self.arch, self.C, self.N = arch, C, N
        self.auxiliary = auxiliary
        self.drop_path_prob = drop_path_prob
        if imagenet:
            self.stem0 = nn.Sequential(
                nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
            self.stem1 = nn.Sequential(nn.ReLU(inplace=True),
                                       nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
                                       nn.BatchNorm2d(C))
            hw = -(-input_hw // 4)
            prev = [(hw, C), (-(-hw // 2), C)]
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, 3 * C, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(3 * C))
            prev = [(input_hw, 3 * C), (input_hw, 3 * C)]
        self.imagenet = imagenet
        total = 3 * N + 2
        reductions = (N, 2 * N + 1)
        self.aux_index = reductions[-1]
        self.cells = nn.ModuleList()
        c = C
        self.auxiliary_head: Optional[nn.Module] = None
        for i in range(total):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell = Cell(arch.reduce if reduction else arch.normal, prev, c, reduction,
                        (i + 1) / total)
            self.cells.append(cell)
            prev = [prev[1], (cell.out_hw, cell.out_channels)]
            if auxiliary and i == self.aux_index:
                self.auxiliary_head = AuxHead(cell.out_channels, classes, 2 if imagenet else 3)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(1 - keep_prob)
        self.classifier = nn.Linear(prev[1][1], classes)
        for p in self.parameters():  # NAO's init_parameters
            if p.dim() >= 2:
                nn.init.kaiming_normal_(p)

    def forward(self, x: torch.Tensor):
        if self.imagenet:
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        else:
            s0 = s1 = self.stem(x)
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(self.dropout(self.global_pooling(s1).flatten(1)))
        if logits_aux is not None:
            return logits, logits_aux
        return logits
