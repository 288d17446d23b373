"""CNN node operations and the op protocols of the CNN search space.

Every op maps ``in_channels`` (the concatenation of a node's inputs) to ``out_channels``.
Convolutions carry no bias; each is followed by BN and the activation. A leaf node's op ends
with a linear (identity) activation, as in the paper. New ops register in ``OPS``.
"""
from __future__ import annotations

from typing import Callable, Dict, List


from torch import nn


def make_activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    if name in ("linear", "identity"):
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r} (choose relu or swish)")


class ConvBNAct(nn.Sequential):
    """conv (no bias) -> BN -> activation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: str = "relu", bn: Dict = None) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, **(bn or {})),
            make_activation(act),
        )


class SepConv(nn.Sequential):
    """Depthwise k x k -> BN -> act -> pointwise 1x1 -> BN -> act (linear on leaves)."""

    def __init__(self, cin: int, cout: int, kernel: int, act: str, linear: bool, bn: Dict) -> None:
        super().__init__(
            ConvBNAct(cin, cin, kernel, groups=cin, act=act, bn=bn),
            ConvBNAct(cin, cout, 1, act="linear" if linear else act, bn=bn),
        )


class MBConv(nn.Sequential):
    """Inverted bottleneck: 1x1 expand -> act -> depthwise k x k -> act -> 1x1 project (linear)."""

    def __init__(self, cin: int, cout: int, kernel: int, expand: int, act: str, bn: Dict) -> None:
        mid = cin * expand
        super().__init__(
            ConvBNAct(cin, mid, 1, act=act, bn=bn),
            ConvBNAct(mid, mid, kernel, groups=mid, act=act, bn=bn),
            ConvBNAct(mid, cout, 1, act="linear", bn=bn),
        )


OpBuilder = Callable[[int, int, str, bool, Dict], nn.Module]

OPS: Dict[str, OpBuilder] = {
    "SepConv3x3": lambda cin, cout, act, linear, bn: SepConv(cin, cout, 3, act, linear, bn),
    "SepConv5x5": lambda cin, cout, act, linear, bn: SepConv(cin, cout, 5, act, linear, bn),
    "Conv1x1": lambda cin, cout, act, linear, bn: ConvBNAct(
        cin, cout, 1, act="linear" if linear else act, bn=bn),
    "Conv3x3": lambda cin, cout, act, linear, bn: ConvBNAct(
        cin, cout, 3, act="linear" if linear else act, bn=bn),
    "MBConv3x3_e3": lambda cin, cout, act, linear, bn: MBConv(cin, cout, 3, 3, act, bn),
    "MBConv5x5_e3": lambda cin, cout, act, linear, bn: MBConv(cin, cout, 5, 3, act, bn),
}

# Op pools per protocol: node ops are drawn by cycling the pool over nodes 1..N-1 and
# shuffling with the search's seeded RNG ("half and half" for v3, the paper's protocol).
PROTOCOLS: Dict[str, List[str]] = {
    "v3": ["SepConv3x3", "Conv1x1"],
    "v3-sep5": ["SepConv3x3", "SepConv5x5", "Conv1x1"],
    "mbconv": ["MBConv3x3_e3", "MBConv5x5_e3"],
}


def build_op(name: str, cin: int, cout: int, act: str, linear: bool, bn: Dict) -> nn.Module:
    try:
        builder = OPS[name]
    except KeyError:
        raise ValueError(f"unknown CNN op {name!r}; known: {', '.join(OPS)}") from None
    return builder(cin, cout, act, linear, bn)


def draw_ops(protocol: str, num_nodes: int, rng) -> List[str]:
    """ops_def for a protocol: node 0 is the input, the rest cycle the pool, shuffled."""
    pool = PROTOCOLS[protocol]
    ops = [pool[i % len(pool)] for i in range(num_nodes - 1)]
    order = rng.permutation(len(ops))
    return ["input"] + [ops[i] for i in order]


