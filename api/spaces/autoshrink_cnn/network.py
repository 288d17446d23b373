"""Build CNNs from a cell graph: the cell, parallel cell groups, and the macro network.

The macro network is ``stem -> stages of cells -> [head conv] -> GAP -> [dropout] -> FC``.
Stage s has node width ``make_divisible(base * scale[s] * channel_scale, 4)``, ``replicate[s]``
cells and ``pool[s]``; the first cell of a stage with pool p > 1 max-pools its input (node 0)
and projects its residual with stride p. Only active nodes are built, so a shrunk cell costs
exactly what its active graph costs: there are no masked zero branches.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import torch
from torch import nn

from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.ops import ConvBNAct, build_op, make_activation


def make_divisible(value: float, divisor: int = 4) -> int:
    """Round to the nearest multiple of ``divisor`` without dropping more than 10%."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass
class NetworkSpec:
    """Everything besides the cell graph that is needed to rebuild a network."""

    scale: List[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    pool: List[int] = field(default_factory=lambda: [1, 2, 2])
    replicate: List[int] = field(default_factory=lambda: [1, 1, 1])
    width: int = 1
    channel_scale: float = 1.0
    base_channels: int = 16
    stem_channels: int = 32
    stem_stride: int = 1
    head_channels: int = 0          # 0: no head conv (the proxy); 1280 for ShrinkCNN
    activation: str = "relu"
    use_residual: bool = True
    dropout: float = 0.0
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    bn_momentum: float = 0.1        # PyTorch convention (TF 0.999 decay == 0.001 here)
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        self.scale = [float(s) for s in self.scale]
        self.pool = [int(p) for p in self.pool]
        self.replicate = [int(r) for r in self.replicate]
        self.validate()

    def validate(self) -> None:
        lengths = {"--scale": len(self.scale), "--pool": len(self.pool),
                   "--replicate": len(self.replicate)}
        if len(set(lengths.values())) != 1:
            got = ", ".join(f"{k} has {v}" for k, v in lengths.items())
            raise UserError(f"--scale, --pool and --replicate need one value per stage ({got})")
        if not self.scale:
            raise UserError("at least one stage is needed (--scale/--pool/--replicate are empty)")
        if any(s <= 0 for s in self.scale) or self.channel_scale <= 0:
            raise UserError("--scale and --channel_scale values must be positive")
        if any(p < 1 for p in self.pool):
            raise UserError("--pool values must be at least 1")
        if any(r < 1 for r in self.replicate):
            raise UserError("--replicate values must be at least 1")
        if self.width < 1:
            raise UserError(f"--width must be at least 1, got {self.width}")
        if self.activation not in ("relu", "swish"):
            raise UserError(f"--activation must be relu or swish, got {self.activation!r}")

    @property
    def depth(self) -> int:
        return len(self.scale)

    def node_channels(self) -> List[int]:
        return [make_divisible(self.base_channels * s * self.channel_scale) for s in self.scale]

    def to_dict(self) -> Dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict) -> "NetworkSpec":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Cell(nn.Module):
    """One DAG cell: node ops over concatenated inputs, leaves concatenated, plus residual."""

    def __init__(self, graph: CellGraph, cin: int, channels: int, pool: int, act: str,
                 use_residual: bool, bn: Dict) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(pool, pool) if pool > 1 else nn.Identity()
        self.order = graph.active_nodes
        self.node_inputs = {j: graph.inputs(j) for j in self.order}
        self.leaves = graph.leaves
        leaves = set(self.leaves)
        width = {0: cin}
        ops = {}
        for j in self.order:
            cin_j = sum(width[i] for i in self.node_inputs[j])
            ops[str(j)] = build_op(graph.ops_def[j], cin_j, channels, act, j in leaves, bn)
            width[j] = channels
        self.ops = nn.ModuleDict(ops)
        self.out_channels = channels * len(self.leaves) if self.leaves else cin
        self.residual: Optional[nn.Module] = None
        self.use_residual = use_residual and bool(self.leaves)
        if self.use_residual and (self.out_channels != cin or pool > 1):
            self.residual = nn.Sequential(
                nn.Conv2d(cin, self.out_channels, 1, stride=pool, bias=False),
                nn.BatchNorm2d(self.out_channels, **bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = {0: self.pool(x)}
        for j in self.order:
            srcs = self.node_inputs[j]
            inp = states[srcs[0]] if len(srcs) == 1 else torch.cat([states[i] for i in srcs], 1)
            states[j] = self.ops[str(j)](inp)
        if not self.leaves:
            return states[0]
        out = states[self.leaves[0]] if len(self.leaves) == 1 else torch.cat(
            [states[j] for j in self.leaves], 1)
        if self.use_residual:
            out = out + (x if self.residual is None else self.residual(x))
        return out


class CellGroup(nn.Module):
    """``width`` parallel cells on the same input, outputs concatenated along channels."""

    def __init__(self, graph: CellGraph, cin: int, channels: int, pool: int, width: int,
                 act: str, use_residual: bool, bn: Dict) -> None:
        super().__init__()
        self.cells = nn.ModuleList(
            Cell(graph, cin, channels, pool, act, use_residual, bn) for _ in range(width))
        self.out_channels = sum(c.out_channels for c in self.cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.cells) == 1:
            return self.cells[0](x)
        return torch.cat([cell(x) for cell in self.cells], 1)


class CellNetwork(nn.Module):
    """stem -> stages of cell groups -> optional head conv -> GAP -> dropout -> FC."""

    def __init__(self, graph: CellGraph, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        bn = {"momentum": spec.bn_momentum, "eps": spec.bn_eps}
        act = spec.activation
        self.stem = ConvBNAct(spec.in_channels, spec.stem_channels, 3, spec.stem_stride,
                              act=act, bn=bn)
        cin = spec.stem_channels
        blocks = []
        for channels, pool, reps in zip(spec.node_channels(), spec.pool, spec.replicate):
            for r in range(reps):
                group = CellGroup(graph, cin, channels, pool if r == 0 else 1, spec.width, act,
                                  spec.use_residual, bn)
                blocks.append(group)
                cin = group.out_channels
        self.cells = nn.Sequential(*blocks)
        self.head = (ConvBNAct(cin, spec.head_channels, 1, act=act, bn=bn)
                     if spec.head_channels else nn.Identity())
        features = spec.head_channels or cin
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(features, spec.num_classes)
        self.num_features = features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def build_network(graph: CellGraph, spec: NetworkSpec) -> CellNetwork:
    return CellNetwork(graph, spec)


def cpu_channels_last_ok(model: nn.Module) -> bool:
    """Whether channels_last is safe for ``model`` on CPU.

    channels_last is 1.7x faster for the proxy networks on CPU, but PyTorch's CPU backward of
    a 1x1 strided convolution with fewer than 8 input channels in channels_last crashes
    (seen with torch 2.15); such networks (tiny channel scales) train in the default layout.
    """
    return not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
                   and m.in_channels < 8 for m in model.modules())


__all__ = ["NetworkSpec", "Cell", "CellGroup", "CellNetwork", "build_network", "make_divisible",
           "make_activation", "cpu_channels_last_ok"]
