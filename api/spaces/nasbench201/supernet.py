"""The weight-sharing search model of the NAS-Bench-201 space: the network AutoDL-Projects
searches with DARTS and GDAS (``TinyNetworkDarts`` / ``TinyNetworkGDAS`` over
``NAS201SearchCell``), re-implemented on this package's ops and layout.

Every cell is a :class:`SearchCell` holding all 5 ops on each of its 6 edges; one architecture
parameter ``alpha_cell`` (6 edges, 5 ops) is shared by every cell. Modes of
:meth:`NASBench201Supernet.forward` (see :mod:`api.spaces.supernet`): ``softmax`` (DARTS),
``gumbel`` (GDAS, with ``tau``) and ``fixed`` (with ``arch``: exactly the cell's op per edge).
``derive()`` is AutoDL's ``genotype()``: per edge the argmax over all 5 ops, ``none`` included.

Fidelity notes: docs/fidelity/nasbench201.md.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from api.spaces.nasbench201.cell import EDGES, OPS, Cell
from api.spaces.nasbench201.network import build_body, make_op
from api.spaces.supernet import MODES, Supernet, cpu_channels_last, gumbel_hard

#: Op indices the softmax mode computes (``none`` adds 0 with a 0 gradient).
_LIVE_OPS = tuple(j for j, op in enumerate(OPS) if op != "none")
#: Per node 1..3, the indices of its incoming edges (in string order) and their source nodes.
_NODE_EDGES = tuple(tuple((k, frm) for k, (to, frm) in enumerate(EDGES) if to == node)
                    for node in (1, 2, 3))


class SearchCell(nn.Module):
    """NAS-Bench-201's cell with every op on every edge (AutoDL's ``NAS201SearchCell`` at
    stride 1): ``edges[e][j]`` is op ``OPS[j]`` of edge ``EDGES[e]``, all C->C."""

    def __init__(self, c: int, affine: bool = False, track_running_stats: bool = True) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(op, c, affine, track_running_stats) for op in OPS)
            for _ in EDGES)

    def forward_softmax(self, x: torch.Tensor, weights: Sequence[Sequence[torch.Tensor]]):
        """DARTS: ``weights[e][j]`` the softmax weight (a 0-dim tensor) of op j on edge e."""
        nodes = [x]
        for incoming in _NODE_EDGES:
            total = None
            for k, frm in incoming:
                ops, w, h = self.edges[k], weights[k], nodes[frm]
                for j in _LIVE_OPS:
                    y = ops[j](h) * w[j]
                    total = y if total is None else total + y
            nodes.append(total)
        return nodes[3]

    def forward_gumbel(self, x: torch.Tensor, index: Sequence[int],
                       picked: Sequence[torch.Tensor], rest: Sequence[torch.Tensor]):
        """GDAS: edge e runs only op ``index[e]``, scaled by its hard weight ``picked[e]``;
        ``rest[n]`` is the sum of the unsampled hard weights of node n+1's edges."""
        nodes = [x]
        for incoming, extra in zip(_NODE_EDGES, rest):
            total = None
            for k, frm in incoming:
                y = self.edges[k][index[k]](nodes[frm]) * picked[k]
                total = y if total is None else total + y
            nodes.append(total + extra)
        return nodes[3]

    def forward_fixed(self, x: torch.Tensor, index: Sequence[int]):
        """One discrete cell: edge e runs op ``index[e]`` alone."""
        nodes = [x]
        for incoming in _NODE_EDGES:
            total = None
            for k, frm in incoming:
                y = self.edges[k][index[k]](nodes[frm])
                total = y if total is None else total + y
            nodes.append(total)
        return nodes[3]


class NASBench201Supernet(Supernet):
    """AutoDL's NB201 search model (``TinyNetworkDarts``/``TinyNetworkGDAS``); ``forward``
    returns the logits."""

    def __init__(self, num_classes: int, C: int = 16, N: int = 5, affine: bool = False,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        if C < 1 or N < 1 or num_classes < 1:
            raise ValueError("the NAS-Bench-201 supernet needs C, N and num_classes >= 1")
        self.C, self.N, self.num_classes = C, N, num_classes
        self.affine, self.track_running_stats = affine, track_running_stats
        build_body(self, C, N, num_classes,
                   lambda width: SearchCell(width, affine, track_running_stats))
        self.alpha_cell = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)))
        #: The cell GDAS sampled in the last ``gumbel`` forward (None before any).
        self.last_sample: Optional[Cell] = None

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, mode: str = "softmax", tau: Optional[float] = None,
                arch: Union[Cell, str, None] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``mode``: ``softmax`` (DARTS), ``gumbel`` (GDAS; needs ``tau``, optional
        ``generator`` for the noise) or ``fixed`` (needs ``arch``)."""
        if mode == "softmax":
            weights = [row.unbind(0) for row in torch.softmax(self.alpha_cell, dim=-1).unbind(0)]

            def run(cell: SearchCell, h: torch.Tensor) -> torch.Tensor:
                return cell.forward_softmax(h, weights)
        elif mode == "gumbel":
            if tau is None:
                raise ValueError("the gumbel mode needs a temperature tau")
            hard, index = gumbel_hard(self.alpha_cell, float(tau), generator=generator)
            sampled: List[int] = index.tolist()  # one device sync per forward
            self.last_sample = Cell.from_op_indices(sampled)
            chosen = hard.gather(1, index.unsqueeze(1)).squeeze(1)
            unsampled = hard.sum(dim=1) - chosen  # 0 in value, the gradient of the others
            picked = chosen.unbind(0)
            rest = [sum(unsampled[k] for k, _ in incoming) for incoming in _NODE_EDGES]

            def run(cell: SearchCell, h: torch.Tensor) -> torch.Tensor:
                return cell.forward_gumbel(h, sampled, picked, rest)
        elif mode == "fixed":
            if arch is None:
                raise ValueError("the fixed mode needs arch, a NAS-Bench-201 cell")
            cell_arch = Cell.from_string(arch) if isinstance(arch, str) else arch
            if not isinstance(cell_arch, Cell):
                raise ValueError(f"arch must be a NAS-Bench-201 Cell or its string, got "
                                 f"{type(arch).__name__}")
            fixed = cell_arch.op_indices()

            def run(cell: SearchCell, h: torch.Tensor) -> torch.Tensor:
                return cell.forward_fixed(h, fixed)
        else:
            raise ValueError(f"unknown supernet mode {mode!r} (modes: {', '.join(MODES)})")

        h = self.stem(cpu_channels_last(x))  # same maths, ~1.8x faster on CPU
        for block in self.cells:
            h = run(block, h) if isinstance(block, SearchCell) else block(h)
        return self.classifier(self.global_pooling(self.lastact(h)).flatten(1))

    # ------------------------------------------------------------------ architecture
    def edge_weights(self) -> Dict[str, torch.Tensor]:
        """{"cell": softmax(alpha_cell)}: (6 edges in string order, 5 ops in OPS order)."""
        with torch.no_grad():
            return {"cell": torch.softmax(self.alpha_cell.detach(), dim=-1)}

    def derive(self) -> Cell:
        """Per edge the op of largest alpha, ``none`` included (AutoDL's ``genotype()``)."""
        with torch.no_grad():
            return Cell.from_op_indices(self.alpha_cell.argmax(dim=-1).tolist())

    def extra_repr(self) -> str:
        return (f"C={self.C}, N={self.N}, classes={self.num_classes}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
