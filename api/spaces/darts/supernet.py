"""The weight-sharing search model of the DARTS CNN space: DARTS's ``Network`` of
``cnn/model_search.py`` (quark0/darts), which GDAS searches too (AutoDL-Projects'
``NASNetworkGDAS`` / ``NASNetworkGDAS_FRC``), re-implemented on :mod:`api.spaces.darts.ops`
with DARTS's module names, creation order and α initialisation (its state dicts load by name).
Architecture parameters: ``alphas_normal`` and ``alphas_reduce``, (edges, 8) each.

Modes of :meth:`DartsSupernet.forward` (see :mod:`api.spaces.supernet`): ``softmax`` (DARTS;
the ``none`` term is not computed), ``gumbel`` (GDAS, with ``tau``; only the sampled op runs,
indices kept in ``last_sample``) and ``fixed`` (with ``arch``). ``frc=True`` is GDAS-FRC (fixed
reduction cell, :data:`FRC_REDUCE` as its derived stand-in); ``lastact=True`` adds GDAS's BN-ReLU
head; ``pool_bn=False`` drops DARTS's BN after the pooling ops (AutoDL's pools have none).
:meth:`DartsSupernet.derive` is DARTS's ``genotype()``; ``rule="gdas"`` is AutoDL's
``NASNetworkGDAS.genotype()`` (the rule GDAS's search derives with).

Fidelity notes: docs/fidelity/darts.md, docs/fidelity/gdas.md.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.darts.genotype import PRIMITIVES, Genotype, canonical, parse_genotype, validate
from api.spaces.darts.ops import OPS, FactorizedReduce, ReLUConvBN, _Wrapped
from api.spaces.supernet import Supernet, cpu_channels_last as _cpu_channels_last, gumbel_hard

NONE = PRIMITIVES.index("none")
#: The ops the softmax mode runs (``none`` adds 0 with a 0 gradient).
_LIVE = tuple(k for k in range(len(PRIMITIVES)) if k != NONE)

#: What :meth:`DartsSupernet.derive` writes as the reduction cell of a GDAS-FRC search. GDAS's
#: fixed reduction cell is not a cell of this space (its convs are grouped 1x3 + 3x1 convs, and
#: each of its 4 nodes has one input); GDAS's own genotype leaves it out (``reduce=None`` in its
#: ``GDAS_F1``). This stand-in keeps its data flow in the space's ops: node 2 = conv(c_{k-2}),
#: node 3 = conv(c_{k-1}), node 4 = max-pool(c_{k-2}), node 5 = max-pool(c_{k-1}), each written
#: as two pairs on the one input (``sep_conv_3x3`` for the conv), all four concatenated.
FRC_REDUCE = (("sep_conv_3x3", 0), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1),
              ("max_pool_3x3", 0), ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("max_pool_3x3", 1))


class MixedOp(nn.Module):
    """The 8 ops of one edge (DARTS's ``MixedOp``): ``_ops[k]`` is ``PRIMITIVES[k]``.
    ``pool_bn``: DARTS's BN (no affine) after each pooling op; AutoDL's GDAS pools have none."""

    def __init__(self, C: int, stride: int, pool_bn: bool = True) -> None:
        super().__init__()
        self._ops = nn.ModuleList()
        for name in PRIMITIVES:
            op = OPS[name](C, stride, False)
            if "pool" in name and pool_bn:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self._ops.append(op)
        # ops that start with ReLU(inplace=False) inside a ``.op`` Sequential: in the softmax
        # mode they share one ReLU(x) and run their remaining layers (plain list: no
        # re-registration of the modules)
        relu_first = [k for k in _LIVE if isinstance(self._ops[k], _Wrapped)
                      and isinstance(self._ops[k].op[0], nn.ReLU)]
        self._tails = [(k, tuple(self._ops[k].op)[1:]) for k in relu_first]
        self._plain = [k for k in _LIVE if k not in relu_first]

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """DARTS: ``sum_k weights[k] * op_k(x)`` (``weights``: 0-dim tensors), ``none`` left out."""
        total = None
        for k in self._plain:
            y = self._ops[k](x) * weights[k]
            total = y if total is None else total + y
        if self._tails:
            r = F.relu(x)
            for k, tail in self._tails:
                h = r
                for layer in tail:
                    h = layer(h)
                y = h * weights[k]
                total = y if total is None else total + y
        return total


class SearchCell(nn.Module):
    """DARTS's search ``Cell``: preprocessing, then ``steps`` nodes over MixedOps."""

    def __init__(self, steps: int, multiplier: int, C_prev_prev: int, C_prev: int, C: int,
                 reduction: bool, reduction_prev: bool, pool_bn: bool = True) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self._steps = steps
        self.multiplier = multiplier
        self._ops = nn.ModuleList(MixedOp(C, 2 if reduction and j < 2 else 1, pool_bn)
                                  for i in range(steps) for j in range(2 + i))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, edge_fn) -> torch.Tensor:
        """``edge_fn(e, mixed_op, h)``: the output of edge ``e`` (numbered as the alphas)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for _ in range(self._steps):
            total = None
            for h in list(states):
                y = edge_fn(e, self._ops[e], h)
                total = y if total is None else total + y
                e += 1
            states.append(total)
        return torch.cat(states[-self.multiplier:], dim=1)

    def forward_fixed(self, s0: torch.Tensor, s1: torch.Tensor,
                      pairs: Sequence[Any]) -> torch.Tensor:
        """The discrete cell of ``pairs`` (a genotype's ``(op, j)`` list, 2 per node) through
        the shared ops; concat the last ``multiplier`` nodes as the search cell does."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self._steps):
            total = None
            for op, j in pairs[2 * i:2 * i + 2]:
                edge = i * (i + 3) // 2 + j  # edges of nodes before i: 2 + 3 + ... + (i + 1)
                y = self._ops[edge]._ops[PRIMITIVES.index(op)](states[j])
                total = y if total is None else total + y
            states.append(total)
        return torch.cat(states[-self.multiplier:], dim=1)


def _grouped_1x3_3x1(C: int) -> nn.Sequential:
    """GDAS's reduction branch: ReLU, 1x3 then 3x1 stride-2 convs (8 groups), BN, ReLU, 1x1
    conv, BN (BN without affine in the search model)."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, (1, 3), stride=(1, 2), padding=(0, 1), groups=8, bias=False),
        nn.Conv2d(C, C, (3, 1), stride=(2, 1), padding=(1, 0), groups=8, bias=False),
        nn.BatchNorm2d(C, affine=False),
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, 1, bias=False),
        nn.BatchNorm2d(C, affine=False),
    )


class FixedReductionCell(nn.Module):
    """GDAS's fixed reduction cell (AutoDL's ``GDAS_Reduction_Cell``, GDAS's ``Transition``):
    the cat of branch(c_{k-2}), branch(c_{k-1}) (:func:`_grouped_1x3_3x1`) and 3x3 stride-2
    max-pool + BN of each; 4*C channels. Convs without bias, as GDAS's ``Transition`` (AutoDL's
    search copy gives them a bias when BN is not affine; BN follows, so it only matters at
    the borders)."""

    multiplier = 4
    reduction = True

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction_prev: bool) -> None:
        super().__init__()
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self.ops1 = nn.ModuleList([_grouped_1x3_3x1(C), _grouped_1x3_3x1(C)])
        self.ops2 = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), nn.BatchNorm2d(C, affine=False))
            for _ in range(2))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, *_: Any) -> torch.Tensor:
        s0, s1 = self.preprocess0(s0), self.preprocess1(s1)
        return torch.cat([self.ops1[0](s0), self.ops1[1](s1), self.ops2[0](s0), self.ops2[1](s1)],
                         dim=1)


class DartsSupernet(Supernet):
    """DARTS's search network (GDAS's with ``frc``/``lastact``/``pool_bn=False``); ``forward``
    returns logits. ``track_running_stats=False``: the cells' BN keep no running statistics
    (AutoDL's flag; the stem's and the head's BN keep theirs, as AutoDL's)."""

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, frc: bool = False,
                 lastact: bool = False, pool_bn: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        if C < 2 or C % 2 or layers < 1 or steps < 1 or not 1 <= multiplier <= steps \
                or stem_multiplier < 1 or num_classes < 1:
            raise ValueError(f"DARTS supernet needs an even C >= 2, layers >= 1, steps >= 1, "
                             f"1 <= multiplier <= steps (got C={C}, layers={layers}, "
                             f"steps={steps}, multiplier={multiplier})")
        if frc and (2 * C) % 8:
            raise ValueError(f"GDAS-FRC's reduction cell has 8-group convs: 2*C must be a "
                             f"multiple of 8 (got C={C})")
        self._C, self._num_classes, self._layers = C, num_classes, layers
        self._steps, self._multiplier, self.frc = steps, multiplier, bool(frc)
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            if reduction and frc:
                cell: nn.Module = FixedReductionCell(C_prev_prev, C_prev, C_curr, reduction_prev)
            else:
                cell = SearchCell(steps, multiplier, C_prev_prev, C_prev, C_curr, reduction,
                                  reduction_prev, pool_bn)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
        if not track_running_stats:
            for module in self.cells.modules():
                if isinstance(module, nn.BatchNorm2d):
                    _drop_running_stats(module)
        self.pool_bn, self.track_running_stats = bool(pool_bn), bool(track_running_stats)
        self.lastact = (nn.Sequential(nn.BatchNorm2d(C_prev), nn.ReLU(inplace=False))
                        if lastact else None)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        #: The edges (j, node) in the alphas' row order; the ops in their column order.
        self.edges = [(j, i + 2) for i in range(steps) for j in range(i + 2)]
        self.op_names = PRIMITIVES
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(len(self.edges), len(PRIMITIVES)))
        if not frc:
            self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(len(self.edges),
                                                                 len(PRIMITIVES)))
        #: The op indices GDAS sampled per cell type in the last ``gumbel`` forward.
        self.last_sample: Optional[Dict[str, List[int]]] = None

    def _alphas(self) -> Dict[str, torch.Tensor]:
        if self.frc:
            return {"normal": self.alphas_normal}
        return {"normal": self.alphas_normal, "reduce": self.alphas_reduce}

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, mode: str = "softmax", tau: Optional[float] = None,
                arch: Any = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``mode``: ``softmax`` (DARTS), ``gumbel`` (GDAS; needs ``tau``; ``generator`` for
        the noise, else the global RNG) or ``fixed`` (needs ``arch``, a genotype)."""
        if mode == "softmax":
            fns = {}
            for kind, alpha in self._alphas().items():
                rows = [row.unbind(0) for row in F.softmax(alpha, dim=-1).unbind(0)]
                fns[kind] = lambda e, mixed, h, rows=rows: mixed(h, rows[e])
        elif mode == "gumbel":
            if tau is None:
                raise ValueError("the gumbel mode needs a temperature tau")
            fns, self.last_sample = {}, {}
            for kind, alpha in self._alphas().items():
                hard, index = gumbel_hard(alpha, float(tau), generator=generator)
                picked: List[int] = index.tolist()  # one device sync per cell type
                self.last_sample[kind] = picked
                weight = hard.gather(1, index.unsqueeze(1)).squeeze(1).unbind(0)
                fns[kind] = (lambda e, mixed, h, picked=picked, weight=weight:
                             mixed._ops[picked[e]](h) * weight[e])
        elif mode == "fixed":
            if arch is None:
                raise ValueError("the fixed mode needs arch, a DARTS genotype")
            return self._forward_fixed(x, arch)
        else:
            raise ValueError(f"unknown mode {mode!r} (softmax, gumbel or fixed)")
        s0 = s1 = self.stem(_cpu_channels_last(x))
        for cell in self.cells:
            edge_fn = None if isinstance(cell, FixedReductionCell) else \
                fns["reduce" if cell.reduction else "normal"]
            s0, s1 = s1, cell(s0, s1, edge_fn)
        return self._head(s1)

    def _forward_fixed(self, x: torch.Tensor, arch: Any) -> torch.Tensor:
        g = parse_genotype(arch) if isinstance(arch, str) else validate(arch)
        searched = [("normal", g.normal)] + ([] if self.frc else [("reduce", g.reduce)])
        for field, pairs in searched:
            if len(pairs) != 2 * self._steps:
                raise ValueError(f"the genotype's {field} cell has {len(pairs) // 2} nodes; "
                                 f"this supernet's cells have {self._steps}")
            unknown = sorted({op for op, _ in pairs if op not in PRIMITIVES})
            if unknown:
                raise ValueError(f"ops outside the searched ones: {', '.join(unknown)}")
        s0 = s1 = self.stem(_cpu_channels_last(x))
        for cell in self.cells:
            if isinstance(cell, FixedReductionCell):
                out = cell(s0, s1)
            else:
                out = cell.forward_fixed(s0, s1, g.reduce if cell.reduction else g.normal)
            s0, s1 = s1, out
        return self._head(s1)

    def _head(self, s: torch.Tensor) -> torch.Tensor:
        if self.lastact is not None:
            s = self.lastact(s)
        return self.classifier(self.global_pooling(s).flatten(1))

    # ------------------------------------------------------------------ architecture
    def edge_weights(self) -> Dict[str, torch.Tensor]:
        return {kind: F.softmax(alpha.detach(), dim=-1) for kind, alpha in self._alphas().items()}

    def derive(self, rule: str = "darts") -> Genotype:
        """The genotype by DARTS's rule (``rule="darts"``) or AutoDL's GDAS one (``"gdas"``);
        see the module doc. With ``frc`` the reduction cell is :data:`FRC_REDUCE`."""
        if rule not in ("darts", "gdas"):
            raise ValueError(f"unknown derivation rule {rule!r} (darts or gdas)")
        pick = _top2_edges if rule == "darts" else _top2_pairs
        genes = {kind: pick(w.tolist(), self._steps) for kind, w in self.edge_weights().items()}
        concat = list(range(2 + self._steps - self._multiplier, self._steps + 2))
        if self.frc:
            return canonical(genes["normal"], concat, list(FRC_REDUCE), [2, 3, 4, 5])
        return canonical(genes["normal"], concat, genes["reduce"], concat)

    def extra_repr(self) -> str:
        return (f"C={self._C}, layers={self._layers}, steps={self._steps}, "
                f"multiplier={self._multiplier}, frc={self.frc}, pool_bn={self.pool_bn}, "
                f"track_running_stats={self.track_running_stats}")


def _drop_running_stats(bn: nn.BatchNorm2d) -> None:
    """Make ``bn`` what ``BatchNorm2d(..., track_running_stats=False)`` builds: batch
    statistics in training and evaluation, no running-statistics buffers."""
    bn.track_running_stats = False
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        bn.register_buffer(name, None)


def _best_op(row: Sequence[float]) -> int:
    """The arg-max op other than ``none`` (the first on ties)."""
    return max(_LIVE, key=lambda k: row[k])


def _top2_edges(weights: List[List[float]], steps: int) -> List[tuple]:
    """DARTS: per node, the 2 edges of largest strongest non-``none`` weight, their best op."""
    gene, start = [], 0
    for i in range(steps):
        rows = weights[start:start + i + 2]
        ranked = sorted(range(i + 2), key=lambda j: -rows[j][_best_op(rows[j])])
        gene.extend((PRIMITIVES[_best_op(rows[j])], j) for j in ranked[:2])
        start += i + 2
    return gene


#: AutoDL's order of the DARTS space's ops (its ``DARTS_SPACE``, in DARTS's op names): the
#: order in which :func:`_top2_pairs` lists candidates, so ties go as in AutoDL.
AUTODL_DARTS_ORDER = ("none", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
                      "dil_conv_5x5", "avg_pool_3x3", "max_pool_3x3")
_AUTODL_LIVE = tuple(PRIMITIVES.index(op) for op in AUTODL_DARTS_ORDER if op != "none")


def _top2_pairs(weights: List[List[float]], steps: int) -> List[tuple]:
    """AutoDL's GDAS (``NASNetworkGDAS.genotype``): per node, the 2 largest (op, j) over all
    non-``none`` ops of all its edges, both possibly from one j; equal weights keep the
    candidates' order (j, then AutoDL's op order)."""
    gene, start = [], 0
    for i in range(steps):
        cands = [(weights[start + j][k], PRIMITIVES[k], j) for j in range(i + 2)
                 for k in _AUTODL_LIVE]
        ranked = sorted(cands, key=lambda c: -c[0])
        gene.extend((op, j) for _, op, j in ranked[:2])
        start += i + 2
    return gene
