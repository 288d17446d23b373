"""The k candidates of one AutoShrink step as one fused CNN. Off by default.

A step's candidates are its parent graph minus one edge each. :class:`FusedCandidates` builds
the parent's network once with a leading member dimension on every weight: grouped convolutions
and ``BatchNorm2d(M*C)`` over ``(B, M*C, H, W)`` activations, each member's missing edges, nodes
and leaves as zero weights and 0/1 channel masks, weights copied from each member's own network
(:meth:`FusedCandidates.from_members`), loss the sum of the members'. :class:`MemberFreezer`
keeps an early-stopped member's state unchanged. Not covered: MBConv, ``width > 1``, a head
conv, dropout, an empty member cell (:func:`unsupported` says why; such steps train separately).
Design and measurements: bench/README.md (fused candidates, CUDA graphs).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.network import CellNetwork, NetworkSpec, build_network
from api.spaces.autoshrink_cnn.ops import ConvBNAct

Slots = List[List[int]]  # per member: the union slot of each of the member's channels

_CONV_OPS = {"Conv1x1": 1, "Conv3x3": 3}
_SEP_OPS = {"SepConv3x3": 3, "SepConv5x5": 5}


class Layout:
    """A union channel layout: ``width`` slots, and each member's channels' slots."""

    def __init__(self, width: int, slots: Slots) -> None:
        self.width = width
        self.slots = [list(s) for s in slots]

    @classmethod
    def full(cls, width: int, members: int) -> "Layout":
        return cls(width, [list(range(width))] * members)

    def mask(self) -> torch.Tensor:
        m = torch.zeros(len(self.slots), self.width)
        for k, s in enumerate(self.slots):
            m[k, s] = 1.0
        return m.view(1, -1, 1, 1)


def cat_layouts(layouts: Sequence[Layout], keep: Sequence[Sequence[bool]]) -> Layout:
    """Concatenate layouts; ``keep[p][m]``: part p is among member m's parts."""
    members = len(layouts[0].slots)
    slots: Slots = [[] for _ in range(members)]
    offset = 0
    for p, lay in enumerate(layouts):
        for m in range(members):
            if keep[p][m]:
                slots[m] += [offset + c for c in lay.slots[m]]
        offset += lay.width
    return Layout(offset, slots)


def cat_members(tensors: Sequence[torch.Tensor], members: int) -> torch.Tensor:
    """Concatenate ``(B, M*C_p, H, W)`` tensors member by member along channels."""
    if len(tensors) == 1:
        return tensors[0]
    b, _, h, w = tensors[0].shape
    parts = [t.reshape(b, members, -1, h, w) for t in tensors]
    return torch.cat(parts, 2).reshape(b, -1, h, w)


def _act(name: str):
    return {"relu": F.relu, "swish": F.silu}[name]


class FusedConvBNAct(nn.Module):
    """M members' conv (no bias) -> BN -> act, as one grouped conv and one BatchNorm2d."""

    def __init__(self, members: int, cin: Layout, cout: Layout, kernel: int, stride: int = 1,
                 depthwise: bool = False, act: str = "relu", linear: Optional[Sequence[bool]] = None,
                 bn: Optional[Dict] = None) -> None:
        super().__init__()
        self.members, self.cin, self.cout = members, cin, cout
        self.depthwise, self.stride, self.padding = depthwise, stride, kernel // 2
        if depthwise:
            assert cin.width == cout.width
        per_group_in = 1 if depthwise else cin.width
        self.groups = members * cout.width if depthwise else members
        self.weight = nn.Parameter(torch.zeros(members * cout.width, per_group_in, kernel, kernel))
        self.bn = nn.BatchNorm2d(members * cout.width, **(bn or {}))
        with torch.no_grad():
            self.bn.weight.zero_()
        self.act = None if act in ("linear", "identity") else _act(act)
        self.register_buffer("out_mask", cout.mask(), persistent=False)
        lin = torch.zeros(members, cout.width)
        for m, is_linear in enumerate(linear or [False] * members):
            lin[m] = float(is_linear)
        self.register_buffer("linear_mask", lin.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(F.conv2d(x, self.weight, None, self.stride, self.padding, 1, self.groups))
        if self.act is not None:
            y = torch.where(self.linear_mask > 0, y, self.act(y))
        return y * self.out_mask

    def links(self, m: int, member: Optional[ConvBNAct], prefix: str, mprefix: str):
        """(fused key, member key, flat index) for member m's tensors, from its ConvBNAct."""
        if member is None:
            return []
        out = [self.cout.slots[m][c] + m * self.cout.width for c in range(len(self.cout.slots[m]))]
        out = torch.tensor(out, dtype=torch.long)
        w = torch.arange(self.weight.numel()).view(self.weight.shape)
        if self.depthwise:
            widx = w[out]
        else:
            widx = w[out][:, torch.tensor(self.cin.slots[m], dtype=torch.long)]
        conv = member[0]
        assert tuple(widx.shape) == tuple(conv.weight.shape), (widx.shape, conv.weight.shape)
        res = [(prefix + "weight", mprefix + "0.weight", widx)]
        for name in ("weight", "bias", "running_mean", "running_var"):
            res.append((f"{prefix}bn.{name}", f"{mprefix}1.{name}", out))
        return res


class FusedLinear(nn.Module):
    """M members' classifiers on the global-average-pooled features: logits (M, B, classes)."""

    def __init__(self, members: int, cin: Layout, classes: int) -> None:
        super().__init__()
        self.members, self.cin = members, cin
        self.weight = nn.Parameter(torch.zeros(members, classes, cin.width))
        self.bias = nn.Parameter(torch.zeros(members, classes))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        f = feats.reshape(feats.shape[0], self.members, -1)
        return torch.einsum("bmc,mkc->mbk", f, self.weight) + self.bias[:, None]

    def links(self, m: int, prefix: str, mprefix: str):
        w = torch.arange(self.weight.numel()).view(self.weight.shape)[m]
        widx = w[:, torch.tensor(self.cin.slots[m], dtype=torch.long)]
        b = torch.arange(self.bias.numel()).view(self.bias.shape)[m]
        return [(prefix + "weight", mprefix + "weight", widx), (prefix + "bias", mprefix + "bias", b)]


class FusedCell(nn.Module):
    """One cell of the parent graph run for M member graphs (each a sub-graph of the parent)."""

    def __init__(self, parent: CellGraph, graphs: Sequence[CellGraph], cin: Layout, channels: int,
                 pool: int, act: str, use_residual: bool, bn: Dict) -> None:
        super().__init__()
        M = self.members = len(graphs)
        self.pool = nn.MaxPool2d(pool, pool) if pool > 1 else nn.Identity()
        self.order = parent.active_nodes
        self.node_inputs = {j: parent.inputs(j) for j in self.order}
        active = [set(g.active_nodes) for g in graphs]
        layouts = {0: cin}
        ops: Dict[str, nn.ModuleList] = {}
        in_masks = {}
        self.kinds: Dict[int, str] = {}
        for j in self.order:
            srcs = self.node_inputs[j]
            keep = [[j in active[m] and i in graphs[m].inputs(j) for m in range(M)] for i in srcs]
            lin = cat_layouts([layouts[i] for i in srcs], keep)
            # an input a member has but not on this edge (removed edge) is masked out
            in_masks[j] = lin.mask()
            lout = Layout(channels, [list(range(channels)) if j in active[m] else []
                                     for m in range(M)])
            leaf = [j in g.leaves for g in graphs]
            name = parent.ops_def[j]
            if name in _CONV_OPS:
                ops[str(j)] = nn.ModuleList([FusedConvBNAct(
                    M, lin, lout, _CONV_OPS[name], act=act, linear=leaf, bn=bn)])
                self.kinds[j] = "conv"
            elif name in _SEP_OPS:
                ops[str(j)] = nn.ModuleList([
                    FusedConvBNAct(M, lin, lin, _SEP_OPS[name], depthwise=True, act=act, bn=bn),
                    FusedConvBNAct(M, lin, lout, 1, act=act, linear=leaf, bn=bn)])
                self.kinds[j] = "sep"
            else:
                raise NotImplementedError(f"fused candidates do not support op {name!r}")
            layouts[j] = lout
        self.ops = nn.ModuleDict(ops)
        for j, mask in in_masks.items():
            self.register_buffer(f"in_mask_{j}", mask, persistent=False)
        self.leaves = sorted(set().union(*(g.leaves for g in graphs)))
        self.out = cat_layouts([layouts[j] for j in self.leaves],
                               [[j in g.leaves for g in graphs] for j in self.leaves])
        # a member's non-leaf node in a union leaf slot is masked out
        self.register_buffer("leaf_mask", self.out.mask(), persistent=False)
        self.use_residual = use_residual
        # each member's residual: identity (fixed slot map) or a 1x1 strided projection
        self.proj_members = [use_residual and (len(self.out.slots[m]) != len(cin.slots[m]) or pool > 1)
                             for m in range(M)]
        self.residual: Optional[FusedConvBNAct] = None
        if any(self.proj_members):
            rout = Layout(self.out.width, [s if p else [] for s, p in
                                           zip(self.out.slots, self.proj_members)])
            self.residual = FusedConvBNAct(M, cin, rout, 1, stride=pool, act="linear", bn=bn)
        ident = torch.zeros(M * self.out.width, cin.width, 1, 1)
        self.has_identity = use_residual and not all(self.proj_members)
        for m in range(M):
            if use_residual and not self.proj_members[m]:
                for a, b in zip(cin.slots[m], self.out.slots[m]):
                    ident[m * self.out.width + b, a] = 1.0
        self.register_buffer("identity", ident, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        M = self.members
        states = {0: self.pool(x)}
        for j in self.order:
            inp = cat_members([states[i] for i in self.node_inputs[j]], M)
            inp = inp * getattr(self, f"in_mask_{j}")
            for block in self.ops[str(j)]:
                inp = block(inp)
            states[j] = inp
        out = cat_members([states[j] for j in self.leaves], M) * self.leaf_mask
        if self.use_residual:
            if self.has_identity:
                out = out + F.conv2d(x, self.identity.to(x.dtype), groups=M)
            if self.residual is not None:
                out = out + self.residual(x)
        return out

    def links(self, m: int, cell, prefix: str, mprefix: str):
        res = []
        for j in self.order:
            if str(j) not in cell.ops:
                continue
            blocks, mop = self.ops[str(j)], cell.ops[str(j)]
            if self.kinds[j] == "conv":
                res += blocks[0].links(m, mop, f"{prefix}ops.{j}.0.", f"{mprefix}ops.{j}.")
            else:
                res += blocks[0].links(m, mop[0], f"{prefix}ops.{j}.0.", f"{mprefix}ops.{j}.0.")
                res += blocks[1].links(m, mop[1], f"{prefix}ops.{j}.1.", f"{mprefix}ops.{j}.1.")
        if cell.residual is not None:
            assert self.proj_members[m]
            res += self.residual.links(m, cell.residual, prefix + "residual.", mprefix + "residual.")
        return res


def unsupported(parent: CellGraph, graphs: Sequence[CellGraph], spec: NetworkSpec) -> Optional[str]:
    """Why these members cannot be fused (None: they can)."""
    if spec.width != 1:
        return "width > 1"
    if spec.head_channels:
        return "a head conv"
    if spec.dropout > 0:
        return "dropout (its random masks could not match the members' own)"
    for j in parent.active_nodes:
        if parent.ops_def[j] not in _CONV_OPS and parent.ops_def[j] not in _SEP_OPS:
            return f"op {parent.ops_def[j]}"
    for g in graphs:
        if g.is_empty:
            return "an empty member cell"
        if not set(map(tuple, g.edge_list)) <= set(map(tuple, parent.edge_list)):
            return "a member that is not a sub-graph of the parent"
    return None


class FusedCandidates(nn.Module):
    """k member networks over one parent graph, trained as one model (see the module doc)."""

    def __init__(self, parent: CellGraph, graphs: Sequence[CellGraph], spec: NetworkSpec) -> None:
        super().__init__()
        why = unsupported(parent, graphs, spec)
        if why:
            raise NotImplementedError(f"fused candidates do not support {why}")
        M = self.members = len(graphs)
        self.spec, self.graphs = spec, list(graphs)
        bn = {"momentum": spec.bn_momentum, "eps": spec.bn_eps}
        act = spec.activation
        self.stem = FusedConvBNAct(M, Layout.full(spec.in_channels, M),
                                   Layout.full(spec.stem_channels, M), 3, spec.stem_stride,
                                   act=act, bn=bn)
        lay = Layout.full(spec.stem_channels, M)
        cells = []
        for channels, pool, reps in zip(spec.node_channels(), spec.pool, spec.replicate):
            for r in range(reps):
                cell = FusedCell(parent, graphs, lay, channels, pool if r == 0 else 1, act,
                                 spec.use_residual, bn)
                cells.append(cell)
                lay = cell.out
        self.cells = nn.ModuleList(cells)
        self.classifier = FusedLinear(M, lay, spec.num_classes)
        self._links: List[List[Tuple[str, str, torch.Tensor]]] = [[] for _ in range(M)]

    # ------------------------------------------------------------------ members
    @classmethod
    def from_members(cls, parent: CellGraph, graphs: Sequence[CellGraph], spec: NetworkSpec,
                     seeds: Sequence[int]) -> Tuple["FusedCandidates", List[CellNetwork]]:
        """The fused model with member m initialised as ``build_network(graphs[m])`` under
        ``torch.manual_seed(seeds[m])``; also returns those separate networks."""
        fused = cls(parent, graphs, spec)
        nets = []
        for m, (g, seed) in enumerate(zip(graphs, seeds)):
            torch.manual_seed(seed)
            net = build_network(g, spec)
            fused.load_member(m, net)
            nets.append(net)
        return fused, nets

    def member_links(self, m: int, net: CellNetwork):
        res = self.stem.links(m, net.stem, "stem.", "stem.")
        for c, (cell, group) in enumerate(zip(self.cells, net.cells)):
            res += cell.links(m, group.cells[0], f"cells.{c}.", f"cells.{c}.cells.0.")
        res += self.classifier.links(m, "classifier.", "classifier.")
        return res

    @torch.no_grad()
    def load_member(self, m: int, net: CellNetwork) -> None:
        """Copy ``net``'s parameters and BN buffers into member m's slots."""
        own = dict(self.named_parameters()) | dict(self.named_buffers())
        theirs = net.state_dict()
        links = self.member_links(m, net)
        for fkey, mkey, idx in links:
            own[fkey].view(-1)[idx.reshape(-1)] = theirs[mkey].reshape(-1).to(own[fkey].dtype)
        self._links[m] = links

    def member_tensors(self, m: int, grads: bool = False) -> Dict[str, torch.Tensor]:
        """Member m's tensors (or parameter gradients) keyed as in its own network's state_dict."""
        own = dict(self.named_parameters()) | dict(self.named_buffers())
        out = {}
        for fkey, mkey, idx in self._links[m]:
            t = own[fkey]
            if grads:
                if not isinstance(t, nn.Parameter):
                    continue
                t = t.grad if t.grad is not None else torch.zeros_like(t)
            out[mkey] = t.detach().reshape(-1)[idx.reshape(-1)].view(idx.shape)
        return out

    # ------------------------------------------------------------------ training
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (M, B, C, H, W), member m's batch in x[m] (or one shared (B, C, H, W) batch).
        Returns logits (M, B, classes)."""
        M = self.members
        if x.dim() == 4:
            x = x.unsqueeze(0).expand(M, *x.shape)
        b = x.shape[1]
        x = x.transpose(0, 1).reshape(b, M * x.shape[2], *x.shape[3:])
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.classifier(x.mean((2, 3)))

    def loss(self, logits: torch.Tensor, y: torch.Tensor,
             active: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Sum of the active members' mean cross-entropies; y: (M, B) or a shared (B,)."""
        if y.dim() == 1:
            y = y.unsqueeze(0).expand(self.members, -1)
        members = range(self.members) if active is None else active
        return sum(F.cross_entropy(logits[m], y[m]) for m in members)

    def member_losses(self, logits: torch.Tensor, y: torch.Tensor,
                      reduction: str = "mean") -> torch.Tensor:
        """Each member's cross-entropy (its mean or sum over its batch), shape (M,): one
        kernel for all members; y: (M, B) or a shared (B,)."""
        M, b, classes = logits.shape
        if y.dim() == 1:
            y = y.unsqueeze(0).expand(M, -1)
        ce = F.cross_entropy(logits.reshape(M * b, classes), y.reshape(-1), reduction="none")
        ce = ce.view(M, b)
        return ce.mean(1) if reduction == "mean" else ce.sum(1)

    def param_groups(self, weight_decay: float):
        """As the proxy's ``_param_groups``: decay on conv and linear weights only."""
        decay, no_decay = [], []
        for module in self.modules():
            for name, p in module.named_parameters(recurse=False):
                is_weight = name == "weight" and isinstance(module, (FusedConvBNAct, FusedLinear))
                (decay if is_weight else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]


class MemberFreezer:
    """Keeps stopped members' parameters, BN buffers and optimizer state unchanged.

    Call :meth:`freeze` when a member stops and :meth:`restore` after every optimizer step
    (and after any train-mode forward whose BN updates must not count, e.g. before evaluating).
    Every per-member tensor of the fused model has a leading dimension that is a multiple of M,
    member m owning the m-th block; scalar tensors (Adam's step, num_batches_tracked) are shared.
    """

    def __init__(self, model: FusedCandidates, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.opt = model, optimizer
        self.saved: Dict[int, List[Tuple[torch.Tensor, torch.Tensor]]] = {}

    def _tensors(self):
        yield from self.model.parameters()
        for name, b in self.model.named_buffers():
            if b.dim() > 0 and not ("mask" in name.rsplit(".", 1)[-1] or name.endswith("identity")):
                yield b
        for state in self.opt.state.values():
            for v in state.values():
                if torch.is_tensor(v) and v.dim() > 0:
                    yield v

    def _slice(self, t: torch.Tensor, m: int) -> torch.Tensor:
        return t.view(self.model.members, -1)[m]

    @torch.no_grad()
    def freeze(self, m: int) -> None:
        # optimizer state must exist (after at least one step) for it to be kept
        self.saved[m] = [(t, self._slice(t, m).clone()) for t in self._tensors()]

    @torch.no_grad()
    def restore(self) -> None:
        for m, pairs in self.saved.items():
            for t, value in pairs:
                self._slice(t, m).copy_(value)

    @property
    def active(self) -> List[int]:
        return [m for m in range(self.model.members) if m not in self.saved]


__all__ = ["FusedCandidates", "MemberFreezer", "unsupported", "Layout"]
