"""The k RNN candidates of one AutoShrink step as one fused language model.

A step's candidates are its parent cell minus one edge each. :class:`FusedRNNCandidates` holds
the members' language models (embedding, cell, tied decoder) with a leading member dimension on
every weight and runs the parent's recurrence once for all of them with batched matmuls: a
member's node state is the mean of its own contributions (edge weights ``1 / indegree`` or 0);
each member has its own sequence length; only members still training are computed. No dropout
(the search trains without it). Autograd, meant for the GPU (on the CPU the hand-written
per-member path is faster); checked in float64 by ``tests/searching/fused/test_fused_rnn.py``.
Design and measurements: bench/README.md (fused candidates, CUDA graphs).
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_rnn.space import RNN_OPS

_ACTS = {"tanh": torch.tanh, "relu": F.relu, "sigmoid": torch.sigmoid}


class _Source:
    """A parent node with out-edges: its slot and its targets (grouped by their op)."""

    def __init__(self, node: int, slot: int, targets: Sequence[int], ops: Sequence[str]) -> None:
        self.node, self.slot, self.targets = node, slot, tuple(targets)
        self.groups: List[Tuple[str, int, int]] = []
        start = 0
        for q in range(1, len(targets) + 1):
            if q == len(targets) or ops[targets[q]] != ops[targets[start]]:
                self.groups.append((ops[targets[start]], start, q))
                start = q


class FusedRNNCandidates(nn.Module):
    """M members' language models over one parent cell (see the module doc)."""

    def __init__(self, parent: CellGraph, graphs: Sequence[CellGraph], ntoken: int,
                 ninp: int, nhid: int) -> None:
        super().__init__()
        M, H = len(graphs), nhid
        self.members, self.ntoken, self.ninp, self.nhid = M, ntoken, ninp, nhid
        ops = parent.ops_def
        parent_edges = set(parent.edge_list)
        active = parent.active_nodes
        self.slots = {0: 0, **{j: q + 1 for q, j in enumerate(active)}}
        self.sources: List[_Source] = []
        for i in [0] + active:
            targets = sorted((j for s, j in parent_edges if s == i),
                             key=lambda j: (RNN_OPS.index(ops[j]), j))
            if targets:
                self.sources.append(_Source(i, self.slots[i], targets, ops))
        S = len(self.slots)
        self.encoder = nn.Parameter(torch.zeros(M, ntoken, ninp))
        self.W0 = nn.Parameter(torch.zeros(M, ninp + H, 2 * H))
        self.Ws = nn.ParameterList([nn.Parameter(torch.zeros(M, H, 2 * len(s.targets) * H))
                                    for s in self.sources])
        self.decoder_bias = nn.Parameter(torch.zeros(M, ntoken))
        # per member: weight of each parent edge into its target, and of each node in the output
        edge_w = [torch.zeros(M, 1, len(s.targets), 1) for s in self.sources]
        leaf_w = torch.zeros(M, 1, S, 1)
        for m, g in enumerate(graphs):
            edges = set(g.edge_list)
            if not edges <= parent_edges:
                raise ValueError(f"member {m} has edges outside the parent cell")
            for s, w in zip(self.sources, edge_w):
                for q, j in enumerate(s.targets):
                    if (s.node, j) in edges:
                        w[m, 0, q, 0] = 1.0 / len(g.inputs(j))
            leaves = g.leaves or [0]
            for j in leaves:
                leaf_w[m, 0, self.slots[j], 0] = 1.0 / len(leaves)
        for q, w in enumerate(edge_w):
            self.register_buffer(f"edge_w{q}", w, persistent=False)
        # the nodes that are a leaf in some member, and their output weight per member (a
        # member's own leaves: 1 / its leaf count; others: 0)
        self.leaf_nodes = [j for j, slot in self.slots.items() if bool(leaf_w[:, 0, slot].any())]
        self.register_buffer("leaf_w", leaf_w[:, :, [self.slots[j] for j in self.leaf_nodes]],
                             persistent=False)

    # ------------------------------------------------------------------ members' own models
    @classmethod
    def from_members(cls, parent: CellGraph, graphs: Sequence[CellGraph],
                     build: Callable[[CellGraph], nn.Module], seeds: Sequence[int]):
        """The fused model with each member initialised as ``torch.manual_seed(seed);
        build(graph)`` initialises it alone, and the members' own models (for their costs)."""
        nets = []
        for g, seed in zip(graphs, seeds):
            torch.manual_seed(seed)
            nets.append(build(g))
        first = nets[0]
        fused = cls(parent, graphs, first.ntoken, first.ninp, first.nhid)
        fused.to(first.encoder.weight.dtype)
        for m, net in enumerate(nets):
            fused.load_member(m, net)
        return fused, nets

    def _links(self, m: int, net: nn.Module,
                 full: Callable[[nn.Parameter], torch.Tensor] = lambda p: p):
        """(fused slice, member tensor) pairs: where member m's tensors live in the fused ones.
        ``full`` maps a parameter (fused or the member's) to what is paired: the parameter
        itself, or its gradient."""
        H = self.nhid
        out = [(full(self.encoder)[m], full(net.encoder.weight)),
               (full(self.W0)[m], full(net.cell.W0)),
               (full(self.decoder_bias)[m], full(net.decoder_bias))]
        for s, W in zip(self.sources, self.Ws):
            n, W = len(s.targets), full(W)
            for q, j in enumerate(s.targets):
                key = f"{s.node}_{j}"
                if key in net.cell.Ws:
                    w = full(net.cell.Ws[key])
                    out.append((W[m, :, q * H:(q + 1) * H], w[:, :H]))
                    out.append((W[m, :, (n + q) * H:(n + q + 1) * H], w[:, H:]))
        return out

    @torch.no_grad()
    def load_member(self, m: int, net: nn.Module) -> None:
        for mine, theirs in self._links(m, net):
            mine.copy_(theirs)

    def member_grads(self, m: int, net: nn.Module) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """(member m's slice of the fused gradient, the member's own gradient) pairs."""
        return self._links(m, net, lambda p: p.grad)

    # ------------------------------------------------------------------------ forward
    def _select(self, p: torch.Tensor, members: Optional[torch.Tensor]) -> torch.Tensor:
        return p if members is None else p.index_select(0, members)

    def losses(self, inputs: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor,
               lengths: Optional[torch.Tensor] = None, members: Optional[torch.Tensor] = None):
        """Each member's mean next-word loss and new hidden state.

        ``inputs``/``targets`` (A, T, B) word ids (or (T, B), shared by all), ``hidden``
        (A, B, H), ``lengths`` (A,) each member's steps (default T; steps past them are
        padding), ``members`` (A,) which members (default all). Returns ((A,), (A, B, H))."""
        enc = self._select(self.encoder, members)
        A = enc.size(0)
        if inputs.dim() == 2:
            inputs, targets = inputs.expand(A, *inputs.shape), targets.expand(A, *targets.shape)
        _, T, B = inputs.shape
        rows = torch.arange(A, device=inputs.device).view(A, 1, 1)
        emb = enc[rows, inputs]                                         # (A, T, B, ninp)
        out = self.cell(emb, hidden, members)                           # (A, T, B, H)
        logits = torch.baddbmm(self._select(self.decoder_bias, members).unsqueeze(1),
                               out.reshape(A, T * B, self.nhid), enc.transpose(1, 2))
        ce = F.cross_entropy(logits.view(A * T * B, -1), targets.reshape(-1),
                             reduction="none").view(A, T, B)
        if lengths is None:
            return ce.mean((1, 2)), out[:, -1]
        valid = torch.arange(T, device=ce.device).view(1, T, 1) < lengths.view(A, 1, 1)
        loss = torch.where(valid, ce, 0.0).sum((1, 2)) / (lengths.to(ce.dtype) * B)
        return loss, out[torch.arange(A, device=out.device), lengths - 1]

    def cell(self, emb: torch.Tensor, h: torch.Tensor,
             members: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The parent's recurrence for every selected member: (A, T, B, ninp) -> (A, T, B, H).

        Written for few autograd nodes per time step: tensors are cut with ``unbind``/``split``
        (whose backward is one ``stack``/``cat``), not sliced (whose backward fills a zero
        tensor of the whole per slice), and node states are summed edge by edge."""
        A, T, B, _ = emb.shape
        H = self.nhid
        W0x, W0h = self._select(self.W0, members).split([self.ninp, H], 1)
        xproj = torch.bmm(emb.reshape(A, T * B, self.ninp), W0x).view(A, T, B, 2 * H)
        steps = []
        for q, (src, W) in enumerate(zip(self.sources, self.Ws)):
            ew = self._select(getattr(self, f"edge_w{q}"), members)
            sizes = [b - a for _, a, b in src.groups]
            steps.append((src, self._select(W, members), ew, sizes))
        leaf_w, leaf_nodes = self._select(self.leaf_w, members), self.leaf_nodes
        outs = []
        for x_t in xproj.unbind(1):
            c0, h0 = torch.baddbmm(x_t, h, W0h).chunk(2, -1)
            states = {0: torch.lerp(h, torch.tanh(h0), torch.sigmoid(c0))}
            for src, W, ew, sizes in steps:
                s = states[src.node]
                c, f = torch.bmm(s, W).view(A, B, 2, len(src.targets), H).unbind(2)
                parts = [p if op == "identity" else _ACTS[op](p)
                         for (op, _, _), p in zip(src.groups, f.split(sizes, 2))]
                f = parts[0] if len(parts) == 1 else torch.cat(parts, 2)
                contrib = torch.lerp(s.unsqueeze(2).expand_as(f), f, torch.sigmoid(c)) * ew
                for j, piece in zip(src.targets, contrib.unbind(2)):
                    states[j] = piece if j not in states else states[j] + piece
            if len(leaf_nodes) == 1:
                h = states[leaf_nodes[0]] * leaf_w[:, :, 0]
            else:
                h = (torch.stack([states[j] for j in leaf_nodes], 2) * leaf_w).sum(2)
            outs.append(h)
        return torch.stack(outs, 1)


__all__ = ["FusedRNNCandidates"]
