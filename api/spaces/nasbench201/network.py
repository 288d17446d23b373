"""NAS-Bench-201's fixed network (``TinyNetwork``), re-implemented from AutoDL-Projects'
``cell_infers/tiny_network.py``, ``cells.py`` and ``cell_operations.py`` so that parameter and
FLOP counts equal the benchmark's own.

Layout (C=16, N=5): stem conv3x3 + BN; N cells at C; a ResNet basic block to 2C, stride 2; N
cells at 2C; a basic block to 4C; N cells at 4C; BN + ReLU, global average pool, linear. Every
cell edge is a stride-1 C->C op; node j sums its incoming edges and the output is node 3.
``forward`` returns the logits only. The search model (:mod:`api.spaces.nasbench201.supernet`)
shares this layout (:func:`build_body`) and these ops, with ``affine=False`` in its cells.

Fidelity notes: docs/fidelity/nasbench201.md.
"""
from __future__ import annotations

from typing import Callable, Tuple

import torch
from torch import nn

from api.scoped import torch_threads
from api.spaces.nasbench201.cell import EDGES, Cell


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv -> BN. As AutoDL's, the conv has a bias exactly when the BN has no affine
    (the search model's ``affine=False`` cells); the benchmark network is affine, bias-free."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2,
                                   bias=not affine),
                         nn.BatchNorm2d(c_out, affine=affine,
                                        track_running_stats=track_running_stats))


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, c: int, affine: bool = True,
            track_running_stats: bool = True) -> nn.Module:
    """One stride-1, c->c edge op (``affine``/``track_running_stats``: its BN, if it has one)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, affine=affine, track_running_stats=track_running_stats)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, affine=affine, track_running_stats=track_running_stats)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}")


class InferCell(nn.Module):
    """One cell: node j = sum over i < j of op_(i->j)(node i); output = node 3."""

    def __init__(self, cell: Cell, c: int) -> None:
        super().__init__()
        self.edges = tuple((frm, to) for (to, frm) in EDGES)
        self.layers = nn.ModuleList(make_op(op, c) for op in cell.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        start = 0
        for to in (1, 2, 3):
            total = None
            for k in range(start, start + to):
                y = self.layers[k](nodes[self.edges[k][0]])
                total = y if total is None else total + y
            start += to
            nodes.append(total)
        return nodes[3]


class ResNetBasicBlock(nn.Module):
    """The reduction between stages: two ReLU-conv3x3-BN, stride 2 on the first; shortcut
    avgpool2x2(stride 2) -> conv1x1 (no BN)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2),
                                        nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(nn.Module):
    def __init__(self, cell: Cell, num_classes: int, C: int = 16, N: int = 5) -> None:
        super().__init__()
        if C < 1 or N < 1:
            raise ValueError("TinyNetwork needs C >= 1 and N >= 1")
        self.C, self.N, self.cell = C, N, cell
        build_body(self, C, N, num_classes, lambda width: InferCell(cell, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.cells:
            x = block(x)
        x = self.global_pooling(self.lastact(x)).flatten(1)
        return self.classifier(x)


def build_body(net: nn.Module, C: int, N: int, num_classes: int,
               make_cell: Callable[[int], nn.Module]) -> None:
    """Give ``net`` the TinyNetwork layout around its cells (also the search model's, AutoDL's
    ``TinyNetworkDarts``/``TinyNetworkGDAS``): ``stem`` (conv3x3 3->C + BN); ``cells`` = N
    ``make_cell(width)`` at C, a :class:`ResNetBasicBlock` to 2C, N cells at 2C, a block to
    4C, N cells at 4C; ``lastact`` (BN + ReLU), ``global_pooling``, ``classifier`` (linear with
    bias). Stem, blocks and last BN are affine with running statistics in both models."""
    net.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
    blocks = []
    width = C
    for stage in range(3):
        if stage:
            blocks.append(ResNetBasicBlock(width, width * 2))
            width *= 2
        blocks.extend(make_cell(width) for _ in range(N))
    net.cells = nn.ModuleList(blocks)
    net.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True))
    net.global_pooling = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Linear(width, num_classes)


def benchmark_cost(model: nn.Module, input_size: Tuple[int, int, int]) -> Tuple[int, float]:
    """(params, FLOPs per image) as NAS-Bench-201 counts them (AutoDL's ``get_model_infos``):
    params = every parameter (BN and classifier included); FLOPs = per conv
    ``k_h*k_w*C_in*C_out/groups*H_out*W_out`` (+ ``C_out*H_out*W_out`` with a bias) plus per
    linear ``in*out`` (+ ``out`` with a bias). Pooling, BN, ReLU and additions are not
    counted (the counter hooks pooling but leaves it out of the sum)."""
    total = 0.0

    def conv_hook(m: nn.Conv2d, _inp, out) -> None:
        nonlocal total
        positions = out.shape[0] * out.shape[2] * out.shape[3]
        kh, kw = m.kernel_size
        total += kh * kw * m.in_channels * m.out_channels / m.groups * positions
        if m.bias is not None:
            total += m.out_channels * positions

    def linear_hook(m: nn.Linear, inp, _out) -> None:
        nonlocal total
        batch = inp[0].shape[0]
        total += batch * m.in_features * m.out_features
        if m.bias is not None:
            total += batch * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch_threads(1):  # a tiny forward: one thread is fastest
            model(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    return params, total

