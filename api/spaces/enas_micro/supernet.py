"""The ENAS micro weight-sharing child network (melodyguan/enas ``src/cifar10/micro_child.py``,
the ``fixed_arc is None`` path); ENAS's micro search and NAO-WS train it.

API (kept stable; NAO-WS builds on it)::

    net = EnasMicroSupernet(num_classes=10, C=20, layers=6, num_nodes=5, auxiliary=True,
                            keep_prob=0.9, drop_path_keep_prob=1.0, input_size=32)
    out = net(x, arch)          # arch: a MicroArch (40 integers, ENAS op ids)

``forward`` returns the logits, or ``(logits, aux_logits)`` while training with the auxiliary
head. There are no architecture parameters (the controller lives outside); ``net.step_ratio``
(0..1, set by the caller) scales drop-path as ENAS's ``global_step / num_train_steps``.

Fidelity notes: docs/fidelity/enas.md.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.enas_micro.arch import NODES, MicroArch

NUM_OPS = 5


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5, track_running_stats=False)


class FactorizedReduction(nn.Module):
    """ENAS's ``_factorized_reduction`` at stride 2: two 1x1 convs (C_out/2 each) on the
    input subsampled at offsets (0, 0) and (1, 1), concatenated, BN. No ReLU (callers add
    it where ENAS does)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = _bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x[:, :, ::2, ::2])
        b = self.conv2(F.pad(x, (0, 1, 0, 1))[:, :, 1::2, 1::2][:, :, :a.shape[2], :a.shape[3]])
        return self.bn(torch.cat([a, b], 1))


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), _bn(c_out))


class SharedSepConv(nn.Module):
    """ENAS's ``_enas_conv``: two stacks of ReLU-depthwise-pointwise-BN, each weight stacked
    over the ``num_inputs`` possible inputs of the node and picked by the sampled one."""

    def __init__(self, num_inputs: int, c: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.depth = nn.ParameterList(
            [nn.Parameter(torch.empty(num_inputs, c, 1, k, k)) for _ in range(2)])
        self.point = nn.ParameterList(
            [nn.Parameter(torch.empty(num_inputs, c, c, 1, 1)) for _ in range(2)])
        self.scale = nn.ParameterList([nn.Parameter(torch.ones(num_inputs, c)) for _ in range(2)])
        self.offset = nn.ParameterList(
            [nn.Parameter(torch.zeros(num_inputs, c)) for _ in range(2)])
        for w in list(self.depth) + list(self.point):
            for i in range(num_inputs):
                nn.init.kaiming_normal_(w.data[i], mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor, idx: int) -> torch.Tensor:
        c = x.shape[1]
        for s in range(2):
            # channels-last: PyTorch's CPU depthwise backward is ~100x slower in NCHW
            x = F.relu(x).contiguous(memory_format=torch.channels_last)
            x = F.conv2d(x, self.depth[s][idx], padding=self.k // 2, groups=c).contiguous()
            x = F.conv2d(x, self.point[s][idx])
            x = F.batch_norm(x, None, None, self.scale[s][idx], self.offset[s][idx],
                             training=True, eps=1e-5)
        return x


class SharedSlot(nn.Module):
    """One input slot (``x`` or ``y``) of one node: every (input, op) choice's weights."""

    def __init__(self, num_inputs: int, c: int) -> None:
        super().__init__()
        self.sep3 = SharedSepConv(num_inputs, c, 3)
        self.sep5 = SharedSepConv(num_inputs, c, 5)

    def forward(self, x: torch.Tensor, idx: int, op: int) -> torch.Tensor:
        if op == 0:
            return self.sep3(x, idx)
        if op == 1:
            return self.sep5(x, idx)
        if op == 2:
            return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        if op == 3:
            return F.max_pool2d(x, 3, 1, 1)
        if op == 4:
            return x
        raise ValueError(f"ENAS micro op {op} is not 0..4")


class SharedCell(nn.Module):
    """ENAS's ``_enas_layer``: calibrate the two inputs, B nodes, loose ends -> final conv."""

    def __init__(self, in_shapes: Tuple[Tuple[int, int], Tuple[int, int]], c: int,
                 num_nodes: int) -> None:
        super().__init__()
        (c0, hw0), (c1, hw1) = in_shapes
        self.num_nodes, self.c = num_nodes, c
        if hw0 != hw1:
            if hw0 != 2 * hw1 and hw0 != 2 * hw1 - 1:
                raise ValueError(f"cell inputs of sizes {hw0} and {hw1}")
            self.pre0 = nn.Sequential(nn.ReLU(), FactorizedReduction(c0, c))
        else:
            self.pre0 = ReLUConvBN(c0, c) if c0 != c else nn.Identity()
        self.pre1 = ReLUConvBN(c1, c) if c1 != c else nn.Identity()
        self.slots = nn.ModuleList()
        for n in range(num_nodes):
            self.slots.append(nn.ModuleList([SharedSlot(n + 2, c), SharedSlot(n + 2, c)]))
        self.final_w = nn.Parameter(torch.empty(num_nodes + 2, c, c))  # rows: out, in
        for i in range(num_nodes + 2):
            nn.init.kaiming_normal_(self.final_w.data[i].unsqueeze(-1), mode="fan_in",
                                    nonlinearity="relu")
        self.final_bn = _bn(c)
        self.drop_keep = 1.0  # set by the network: the depth-scaled drop-path keep prob

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, cell: List[int],
                step_ratio: float) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        used = [0] * (self.num_nodes + 2)
        for n in range(self.num_nodes):
            total = 0
            for s in range(2):
                idx, op = cell[4 * n + 2 * s], cell[4 * n + 2 * s + 1]
                h = self.slots[n][s](states[idx], idx, op)
                if op != 4 and self.training and self.drop_keep < 1.0:
                    keep = 1.0 - min(1.0, step_ratio) * (1.0 - self.drop_keep)
                    h = _drop_path(h, keep)
                total = total + h
                used[idx] += 1
            states.append(total)
        loose = [i for i, u in enumerate(used) if u == 0]
        out = F.relu(torch.cat([states[i] for i in loose], 1))
        w = torch.cat([self.final_w[i] for i in loose], 1)  # (c, len(loose) * c)
        return self.final_bn(F.conv2d(out, w.unsqueeze(-1).unsqueeze(-1)))


def _drop_path(x: torch.Tensor, keep: float) -> torch.Tensor:
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class AuxHead(nn.Module):
    """ENAS's auxiliary head (see the module doc)."""

    def __init__(self, c: int, hw: int, num_classes: int) -> None:
        super().__init__()
        pooled = (hw - 5) // 3 + 1
        if pooled < 1:
            raise ValueError(f"the auxiliary head needs at least 5x5 maps, got {hw}x{hw}")
        self.k = pooled
        self.proj = nn.Sequential(nn.Conv2d(c, 128, 1, bias=False), _bn(128), nn.ReLU())
        self.conv = nn.Conv2d(128, 768, pooled, bias=False)
        self.bn = _bn(768)
        self.classifier = nn.Linear(768, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(F.avg_pool2d(F.relu(x), 5, 3))
        total = self.k - 1  # TF SAME padding of a k x k conv at stride 1
        x = F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))
        x = F.relu(self.bn(self.conv(x)))
        return self.classifier(x.mean((2, 3)))


class EnasMicroSupernet(nn.Module):
    """The ENAS micro search network (see the module doc)."""

    def __init__(self, num_classes: int = 10, C: int = 20, layers: int = 6,
                 num_nodes: int = NODES, auxiliary: bool = True, keep_prob: float = 0.9,
                 drop_path_keep_prob: float = 1.0, input_size: int = 32,
                 in_channels: int = 3) -> None:
        super().__init__()
        if C < 2 or C % 2 or layers < 1:
            raise ValueError(f"EnasMicroSupernet needs an even C >= 2 and layers >= 1 "
                             f"(got C={C}, layers={layers})")
        if num_nodes != NODES:
            raise ValueError(f"MicroArch cells have {NODES} nodes, not {num_nodes}")
        self.C, self.layers, self.num_nodes = C, layers, num_nodes
        self.total_cells = layers + 2
        pool_distance = layers // 3
        self.pool_layers = [pool_distance, 2 * pool_distance + 1]
        self.aux_index = self.pool_layers[-1] + 1 if auxiliary else -1
        self.keep_prob, self.drop_path_keep_prob = float(keep_prob), float(drop_path_keep_prob)
        self.step_ratio = 1.0
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False),
                                  _bn(3 * C))
        shapes = [(3 * C, input_size), (3 * C, input_size)]
        c, hw = C, input_size
        self.cells = nn.ModuleList()
        self.reductions = nn.ModuleDict()
        self.aux_head = None
        for layer in range(self.total_cells):
            if layer in self.pool_layers:
                c, hw = 2 * c, (hw + 1) // 2
                self.reductions[str(layer)] = FactorizedReduction(shapes[1][0], c)
                shapes = [shapes[1], (c, hw)]
            cell = SharedCell((shapes[0], shapes[1]), c, num_nodes)
            ratio = (layer + 1) / self.total_cells
            cell.drop_keep = 1.0 - ratio * (1.0 - self.drop_path_keep_prob)
            self.cells.append(cell)
            shapes = [shapes[1], (c, hw)]
            if layer == self.aux_index:
                self.aux_head = AuxHead(c, hw, num_classes)
        self.classifier = nn.Linear(c, num_classes, bias=False)

    def weight_parameters(self):
        return self.parameters()

    def arch_parameters(self) -> List[nn.Parameter]:
        return []

    def edge_weights(self):
        return {}

    def forward(self, x: torch.Tensor, arch: MicroArch):
        normal, reduce = list(arch.normal), list(arch.reduce)
        s = self.stem(x)
        s0 = s1 = s
        aux = None
        for layer, cell in enumerate(self.cells):
            if layer in self.pool_layers:
                r = self.reductions[str(layer)](s1)
                s0, s1 = s1, r
                out = cell(s0, s1, reduce, self.step_ratio)
            else:
                out = cell(s0, s1, normal, self.step_ratio)
            s0, s1 = s1, out
            if layer == self.aux_index and self.training:
                aux = self.aux_head(out)
        h = F.relu(s1).mean((2, 3))
        if self.training and self.keep_prob < 1.0:
            h = F.dropout(h, p=1.0 - self.keep_prob)
        logits = self.classifier(h)
        if aux is not None:
            return logits, aux
        return logits
