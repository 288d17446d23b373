"""ENAS macro networks: the fixed network that retrains a found architecture, and the
weight-sharing search network (melodyguan/enas ``src/cifar10/general_child.py``,
``whole_channels``).

Both: 3x3 conv stem, ``L`` layers with factorized reductions of every output so far after
ENAS's ``pool_layers``, global average pool, dropout, linear (no bias). The search network
(:class:`EnasMacroSupernet`) keeps width C and feeds forward only the sampled branch of each
layer (while training, by default, the other five also run, for their BN statistics); the fixed
network (:class:`EnasMacroNetwork`) doubles the width at each reduction. ``auxiliary``
and ``drop_path_prob`` are accepted (the CIFAR trainer passes them) and do nothing.

Fidelity notes (ops 1/3 and 4/5 in the fixed network): docs/fidelity/enas.md.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.enas_macro.arch import MACRO_BRANCHES, MACRO_OPS, MacroArch


def pool_layers(num_layers: int) -> List[int]:
    d = num_layers // 3
    return [d - 1, 2 * d - 1] if d >= 1 else []


class FactorizedReduction(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x[:, :, ::2, ::2])
        b = self.conv2(F.pad(x, (0, 1, 0, 1))[:, :, 1::2, 1::2][:, :, :a.shape[2], :a.shape[3]])
        return self.bn(torch.cat([a, b], 1))


class Branch(nn.Module):
    """One of the six ops (ENAS's branch), ``c_in -> c`` channels at stride 1."""

    def __init__(self, op: int, c_in: int, c: int) -> None:
        super().__init__()
        self.op = op
        self.inp = nn.Sequential(nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c),
                                 nn.ReLU())
        if op in (0, 2):
            k = 3 if op == 0 else 5
            self.out = nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, bias=False),
                                     nn.BatchNorm2d(c), nn.ReLU())
        elif op in (1, 3):
            k = 3 if op == 1 else 5
            self.out = nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
                                     nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
                                     nn.ReLU())
        elif op not in (4, 5):
            raise ValueError(f"ENAS macro op {op} is not 0..{len(MACRO_OPS) - 1}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        if self.op == 4:
            return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        if self.op == 5:
            return F.max_pool2d(x, 3, 1, 1)
        if self.op in (1, 3):  # channels-last: PyTorch's CPU depthwise backward is far faster
            x = x.contiguous(memory_format=torch.channels_last)
            return self.out(x).contiguous()
        return self.out(x)


class _MacroBase(nn.Module):
    def __init__(self, num_layers: int, C: int, num_classes: int, keep_prob: float,
                 in_channels: int) -> None:
        super().__init__()
        if C < 2 or num_layers < 1:
            raise ValueError(f"an ENAS macro network needs C >= 2 and a layer (C={C})")
        self.num_layers, self.C, self.keep_prob = num_layers, C, float(keep_prob)
        self.pool_layers = pool_layers(num_layers)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        h = x.mean((2, 3))
        if self.training and self.keep_prob < 1.0:
            h = F.dropout(h, p=1.0 - self.keep_prob)
        return self.classifier(h)


class EnasMacroNetwork(_MacroBase):
    """The fixed network of one :class:`MacroArch` (see the module doc)."""

    def __init__(self, arch: MacroArch, num_classes: int = 10, C: int = 96,
                 keep_prob: float = 0.5, in_channels: int = 3) -> None:
        super().__init__(arch.num_layers, C, num_classes, keep_prob, in_channels)
        self.arch = arch
        self.drop_path_prob = 0.0  # no drop-path in ENAS's macro networks (see module doc)
        c = C
        self.branches, self.skip_convs = nn.ModuleList(), nn.ModuleList()
        self.reductions = nn.ModuleDict()
        for k in range(arch.num_layers):
            self.branches.append(Branch(arch.ops[k], c, c))
            n_in = 1 + sum(arch.skips[k])
            self.skip_convs.append(
                nn.Sequential(nn.ReLU(), nn.Conv2d(n_in * c, c, 1, bias=False),
                              nn.BatchNorm2d(c)) if k > 0 else nn.Identity())
            if k in self.pool_layers:
                self.reductions[str(k)] = nn.ModuleList(
                    [FactorizedReduction(c, 2 * c) for _ in range(k + 2)])
                c *= 2
        self.classifier = nn.Linear(c, num_classes, bias=False)

    def extra_repr(self) -> str:
        return f"C={self.C}, layers={self.num_layers}, keep_prob={self.keep_prob}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = [self.stem(x)]
        for k in range(self.num_layers):
            out = self.branches[k](layers[-1])
            if k > 0:
                picked = [layers[i] for i, b in enumerate(self.arch.skips[k]) if b]
                out = self.skip_convs[k](torch.cat(picked + [out], 1))
            layers.append(out)
            if str(k) in self.reductions:
                layers = [r(l) for r, l in zip(self.reductions[str(k)], layers)]
        return self._head(layers[-1])




class EnasMacroSupernet(_MacroBase):
    """ENAS's macro search network: ``forward(x, arch)`` runs each layer's sampled branch and
    skips through the shared weights (see the module doc). BN keeps running statistics: the
    official reward's forward runs in inference mode; ``branches`` (:data:`MACRO_BRANCHES`)
    says which branches update theirs while training."""

    def __init__(self, num_classes: int = 10, C: int = 36, layers: int = 12,
                 keep_prob: float = 0.9, in_channels: int = 3, branches: str = "all") -> None:
        super().__init__(layers, C, num_classes, keep_prob, in_channels)
        if branches not in MACRO_BRANCHES:
            raise ValueError(f"branches {branches!r} is not one of {', '.join(MACRO_BRANCHES)}")
        self.branches = branches
        self.layer_branches = nn.ModuleList(
            [nn.ModuleList([Branch(op, C, C) for op in range(len(MACRO_OPS))])
             for _ in range(layers)])
        self.skip_bns = nn.ModuleList([nn.BatchNorm2d(C) if k > 0 else nn.Identity()
                                       for k in range(layers)])
        self.reductions = nn.ModuleDict(
            {str(k): nn.ModuleList([FactorizedReduction(C, C) for _ in range(k + 2)])
             for k in self.pool_layers})
        self.classifier = nn.Linear(C, num_classes, bias=False)

    def weight_parameters(self):
        return self.parameters()

    def arch_parameters(self) -> list:
        return []

    def edge_weights(self):
        return {}

    def forward(self, x: torch.Tensor, arch: MacroArch) -> torch.Tensor:
        if arch.num_layers != self.num_layers:
            raise ValueError(f"a {arch.num_layers}-layer architecture on a "
                             f"{self.num_layers}-layer supernet")
        layers = [self.stem(x)]
        last = len(MACRO_OPS) - 1
        for k in range(self.num_layers):
            op = last if self.branches == "last" else arch.ops[k]
            out = self.layer_branches[k][op](layers[-1])
            if self.branches == "all" and self.training:
                with torch.no_grad():  # the other branches: their BN statistics only
                    for j, branch in enumerate(self.layer_branches[k]):
                        if j != op:
                            branch(layers[-1])
            if k > 0:
                for i, b in enumerate(arch.skips[k]):
                    if b:
                        out = out + layers[i]
                out = self.skip_bns[k](out)
            layers.append(out)
            if str(k) in self.reductions:
                layers = [r(l) for r, l in zip(self.reductions[str(k)], layers)]
        return self._head(layers[-1])
