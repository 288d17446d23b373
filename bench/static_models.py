"""Hand-written static equivalents of graph-built networks, for the overhead benchmark.

``StaticShrinkCNN`` wires the ShrinkCNN cell (edges 0->1, 0->2, 0->3, 1->3, 0->4, 2->4) by
hand, with the same layers and parameter count as ``build_network(shrinkcnn-a, spec)``, so the
benchmark measures only what the graph interpretation costs.
"""
from __future__ import annotations

import torch
from torch import nn

from api.spaces.autoshrink_cnn.network import NetworkSpec
from api.spaces.autoshrink_cnn.ops import ConvBNAct, SepConv


class StaticShrinkCell(nn.Module):
    def __init__(self, cin: int, c: int, pool: int, act: str, bn: dict) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(pool, pool) if pool > 1 else nn.Identity()
        self.n1 = SepConv(cin, c, 3, act, False, bn)
        self.n2 = SepConv(cin, c, 3, act, False, bn)
        self.n3 = SepConv(cin + c, c, 3, act, True, bn)
        self.n4 = ConvBNAct(cin + c, c, 1, act="linear", bn=bn)
        self.proj = None
        if cin != 2 * c or pool > 1:
            self.proj = nn.Sequential(nn.Conv2d(cin, 2 * c, 1, stride=pool, bias=False),
                                      nn.BatchNorm2d(2 * c, **bn))
        self.out_channels = 2 * c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.pool(x)
        s1, s2 = self.n1(s0), self.n2(s0)
        s3 = self.n3(torch.cat([s0, s1], 1))
        s4 = self.n4(torch.cat([s0, s2], 1))
        out = torch.cat([s3, s4], 1)
        return out + (x if self.proj is None else self.proj(x))


class StaticShrinkCNN(nn.Module):
    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        bn = {"momentum": spec.bn_momentum, "eps": spec.bn_eps}
        self.stem = ConvBNAct(spec.in_channels, spec.stem_channels, 3, spec.stem_stride,
                              act=spec.activation, bn=bn)
        cin, cells = spec.stem_channels, []
        for c, pool, reps in zip(spec.node_channels(), spec.pool, spec.replicate):
            for r in range(reps):
                cell = StaticShrinkCell(cin, c, pool if r == 0 else 1, spec.activation, bn)
                cells.append(cell)
                cin = cell.out_channels
        self.cells = nn.Sequential(*cells)
        self.head = (ConvBNAct(cin, spec.head_channels, 1, act=spec.activation, bn=bn)
                     if spec.head_channels else nn.Identity())
        self.fc = nn.Linear(spec.head_channels or cin, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.cells(self.stem(x)))
        return self.fc(x.mean((2, 3)))
