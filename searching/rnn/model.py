"""The recurrent DAG cell (SPEC section 6) and the language model around it.

Cell, with input x_t and previous state h::

    [c0, h0] = [x_t ; h] W0                 s0 = h + sigmoid(c0) * (tanh(h0) - h)
    edge i->j: [c, h'] = s_i W_ij           contribution s_i + sigmoid(c) * (f_j(h') - s_i)
    s_j = mean of the contributions into j  h_t = mean of the leaves (s0 for the empty cell)

Only active nodes are computed. Speed (the search trains thousands of these) comes from:

* the input half of W0 is applied to all time steps in one matmul before the recurrence;
* the matmuls of all out-edges of a source node are one matmul with the concatenated W_ij;
* the recurrence runs as one autograd Function with a hand-written backward: the forward
  loop builds no autograd graph, the backward walks time in reverse with batched per-source
  element-wise work, and the weight gradients of every step are summed by one large matmul
  per source node at the end (instead of one small matmul per edge and step);
* the tied decoder and the cross-entropy are fused (``linear_cross_entropy``): the softmax
  gradient is formed in place while the logits are hot, with no log-softmax tensor.

``tests/test_rnn_model.py`` checks outputs and gradients against a plain per-edge autograd
implementation.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from api.errors import UserError
from api.graph import CellGraph
from searching.rnn.utils import RNN_OPS, embedded_dropout, locked_dropout, mask2d

INITRANGE = 0.04  # cell weights ~ U(-0.04, 0.04), as DARTS and the original
EMB_INITRANGE = 0.1
# Softmax range guards of _LinearCrossEntropy (base-2 exponents).
EXP2_FLOOR = 100.0       # with a max shift: u >= 2^-100 relative to the column max
EXP2_FLOOR_ABS = 100.0   # without: u >= 2^-100 absolute ...
SUM_MIN, SUM_MAX = 2.0 ** -40, 2.0 ** 100  # ... accepted while the column sums stay in here


# ------------------------------------------------------------------------------ structure
@dataclass(frozen=True)
class SourcePlan:
    """A node with out-edges: its targets (grouped by their op) and where their states live."""

    node: int
    targets: Tuple[int, ...]
    groups: Tuple[Tuple[str, int, int], ...]  # (op, first, end) slices of ``targets``
    target_slots: torch.Tensor                # state slot of each target
    inv_indegree: Optional[torch.Tensor]      # (1, 1, m, 1) 1/indegree of each target, or None


@dataclass(frozen=True)
class CellPlan:
    """What the cell computes, derived once from a CellGraph.

    Node states of one step live in a (B, slots, H) tensor: node 0 in slot 0, then the other
    non-leaf active nodes, then the leaves, so the output mean is one slice.
    """

    nhid: int
    order: Tuple[int, ...]              # node 0, then the active nodes in topological order
    indegree: Dict[int, int]
    sources: Dict[int, SourcePlan]
    leaves: Tuple[int, ...]
    edges: Tuple[Tuple[int, int], ...]  # counted edges, parameter order
    slot: Dict[int, int]
    leaf_weight: torch.Tensor           # (1, leaves, 1): 1 / (leaves * indegree) per leaf

    @classmethod
    def from_graph(cls, graph: CellGraph, nhid: int) -> "CellPlan":
        active = graph.active_nodes
        for j in active:
            if graph.ops_def[j] not in RNN_OPS:
                raise UserError(f"node {j} has op {graph.ops_def[j]!r}; RNN cells use "
                                f"{', '.join(RNN_OPS)}")
        edges = tuple(graph.edge_list)
        leaves = tuple(graph.leaves) or (0,)
        indegree = {j: len(graph.inputs(j)) for j in active}
        slot = {0: 0}
        for j in [j for j in active if j not in leaves] + [j for j in leaves if j != 0]:
            slot[j] = len(slot)
        sources = {}
        for i in [0] + active:
            targets = sorted((j for s, j in edges if s == i),
                             key=lambda j: (RNN_OPS.index(graph.ops_def[j]), j))
            if not targets:
                continue
            groups, start = [], 0
            for q in range(1, len(targets) + 1):
                if q == len(targets) or graph.ops_def[targets[q]] != graph.ops_def[targets[start]]:
                    groups.append((graph.ops_def[targets[start]], start, q))
                    start = q
            inv = [1.0 / indegree[j] for j in targets]
            sources[i] = SourcePlan(i, tuple(targets), tuple(groups),
                                    torch.tensor([slot[j] for j in targets]),
                                    torch.tensor(inv).view(1, 1, -1, 1) if min(inv) < 1 else None)
        weight = torch.tensor([1.0 / (len(leaves) * indegree.get(j, 1)) for j in leaves])
        return cls(nhid, (0, *active), indegree, sources, leaves, edges, slot,
                   weight.view(1, -1, 1))

    @property
    def num_slots(self) -> int:
        return len(self.slot)

    @property
    def leaf_slots(self) -> Tuple[int, int]:
        first = self.slot[self.leaves[0]]
        return first, first + len(self.leaves)


# ------------------------------------------------------------------------------ activations
def _act_(op: str, x: torch.Tensor) -> None:
    """Apply a node op in place."""
    if op == "tanh":
        x.tanh_()
    elif op == "sigmoid":
        x.sigmoid_()
    elif op == "relu":
        x.clamp_min_(0.0)


def _gate_times_act_grad(op: str, c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """c * f'(x), written from the op's output y = f(x)."""
    if op == "tanh":
        return c * (1.0 - y * y)
    if op == "sigmoid":
        return c * y * (1.0 - y)
    if op == "relu":
        return c * (y > 0)
    return c


def _cat_weights(plan: CellPlan, edge_weights: Sequence[torch.Tensor]) -> Dict[int, torch.Tensor]:
    """Per source: [W_c of each target | W_h of each target], one (H, 2mH) matrix."""
    by_edge = dict(zip(plan.edges, edge_weights))
    H = plan.nhid
    cats = {}
    for i, src in plan.sources.items():
        ws = [by_edge[(i, j)] for j in src.targets]
        cats[i] = torch.cat([w[:, :H] for w in ws] + [w[:, H:] for w in ws], dim=1)
    return cats


# ------------------------------------------------------------------------------ recurrence
# The per-step loops below index tuples of views made up front with ``unbind`` (a few C++
# calls) instead of slicing tensors at every step, and use fused ops (``lerp`` for the
# highway update, ``out=`` into preallocated buffers): at B=128, H=100 a step is ~50 small
# ops, so per-op overhead, not arithmetic, is what the element-wise part costs.

@contextlib.contextmanager
def _one_thread(like: torch.Tensor):
    """Run the per-step loop on one CPU thread: its ops are small, and a multi-threaded
    matmul per step pays an OpenMP barrier each time, which is slower on 2 cores and many
    times slower when another process holds the other core. Large ops keep every thread."""
    threads = torch.get_num_threads()
    serial = like.device.type == "cpu" and threads > 1
    if serial:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if serial:
            torch.set_num_threads(threads)


def _cell_forward(plan: CellPlan, xproj: torch.Tensor, h: torch.Tensor,
                  hmask: Optional[torch.Tensor], W0h: torch.Tensor,
                  wcat: Dict[int, torch.Tensor]):
    """Run the recurrence without autograd; returns the outputs and the step buffers.

    Buffers: ``y0`` (T, B, 2H) = [sigmoid(c0), tanh(h0)]; ``states`` (T, B, slots, H);
    ``y[i]`` (T, B, 2, m, H) = [sigmoid(c), f(h')] of source i's out-edges.
    """
    T, B, _ = xproj.shape
    H = plan.nhid
    new = xproj.new_empty
    out = new(T, B, H)
    y0 = new(T, B, 2 * H)
    states = xproj.new_zeros(T, B, plan.num_slots, H)
    ys = {i: new(T, B, 2, len(p.targets), H) for i, p in plan.sources.items()}
    xs, outs, y0s = xproj.unbind(0), out.unbind(0), y0.unbind(0)
    c0s, g0s = y0[..., :H].unbind(0), y0[..., H:].unbind(0)
    sts, s0s = states.unbind(0), states[:, :, 0].unbind(0)
    steps = []
    for j in plan.order:
        src = plan.sources.get(j)
        if src is None:
            continue
        y, slot = ys[j], plan.slot[j]
        d = plan.indegree.get(j, 1)
        steps.append((
            states[:, :, slot].unbind(0), states[:, :, slot].unsqueeze(2).unbind(0),
            1.0 / d if d > 1 else None, wcat[j], y.view(T, B, -1).unbind(0),
            y[:, :, 0].unbind(0), y[:, :, 1].unbind(0),
            [(op, y[:, :, 1, a:b].unbind(0)) for op, a, b in src.groups if op != "identity"],
            src.target_slots.to(xproj.device), new(B, len(src.targets), H)))
    l0, l1 = plan.leaf_slots
    single_leaf = l1 - l0 == 1 and plan.indegree.get(plan.leaves[0], 1) == 1
    leaf_views = (states[:, :, l0] if single_leaf else states[:, :, l0:l1]).unbind(0)
    leaf_w = plan.leaf_weight.to(xproj)
    h_prev = h
    with _one_thread(xproj):
        for t in range(T):
            torch.addmm(xs[t], h_prev * hmask if hmask is not None else h_prev, W0h, out=y0s[t])
            c0s[t].sigmoid_()
            g0s[t].tanh_()
            torch.lerp(h_prev, g0s[t], c0s[t], out=s0s[t])  # s0 = h + c0 (g0 - h)
            st = sts[t]
            for sv, sbv, inv_d, w, yv, cv, fv, acts, tslots, contrib in steps:
                s = sv[t]
                if inv_d is not None:
                    s.mul_(inv_d)  # the mean of the contributions into this node
                torch.mm(s * hmask if hmask is not None else s, w, out=yv[t])
                cv[t].sigmoid_()
                for op, views in acts:
                    _act_(op, views[t])
                torch.lerp(sbv[t], fv[t], cv[t], out=contrib)  # s + c (f - s), every out-edge
                st.index_add_(1, tslots, contrib)
            if single_leaf:
                outs[t].copy_(leaf_views[t])
            else:
                torch.sum(leaf_views[t] * leaf_w, dim=1, out=outs[t])
            h_prev = outs[t]
    return out, (y0, states, ys)


def _prepare_block(plan: CellPlan, out: torch.Tensor, h: torch.Tensor, buffers, omc0, omcs,
                   inv_d, t0: int, t1: int) -> None:
    """Turn the forward buffers of steps t0..t1-1, in place, into the step-independent
    factors of the backward: a few element-wise ops per block of steps, on data that fits
    in cache (whole-sequence passes are memory-bound here; per-step ones overhead-bound).

    ``y0`` becomes [d s0/d pre_c0, d s0/d pre_h0]; ``y[i]`` becomes [d/d pre_c, d/d pre_h']
    of each contribution ``s + c (f - s)`` and ``omc[i]`` = 1 - c, its share to s; edge
    factors include 1/indegree of their target, so node gradients need no extra scaling.
    """
    y0, states, ys = buffers
    H = plan.nhid
    hprev = out[t0 - 1:t1 - 1] if t0 > 0 else torch.cat([h.unsqueeze(0), out[:t1 - 1]], 0)
    c0, g0 = y0[t0:t1, :, :H], y0[t0:t1, :, H:]
    omc = torch.sub(1.0, c0, out=omc0[t0:t1])
    a0 = (g0 - hprev).mul_(c0).mul_(omc)
    g0.copy_(c0 * (1.0 - g0 * g0))
    c0.copy_(a0)
    for i, src in plan.sources.items():
        c, f = ys[i][t0:t1, :, 0], ys[i][t0:t1, :, 1]
        s = states[t0:t1, :, plan.slot[i]].unsqueeze(2)
        omc = torch.sub(1.0, c, out=omcs[i][t0:t1])
        if inv_d[i] is not None:
            omc.mul_(inv_d[i])
        a = (f - s).mul_(c).mul_(omc)
        for op, lo, hi in src.groups:
            f[:, :, lo:hi] = _gate_times_act_grad(op, c[:, :, lo:hi], f[:, :, lo:hi])
        if inv_d[i] is not None:
            f.mul_(inv_d[i])
        c.copy_(a)


def _cell_backward(plan: CellPlan, grad_out: torch.Tensor, out: torch.Tensor, h: torch.Tensor,
                   hmask: Optional[torch.Tensor], W0h: torch.Tensor,
                   wcat: Dict[int, torch.Tensor], buffers, block: int = 4) -> Tuple:
    """Reverse-time sweep: each step multiplies prepared factors by the incoming gradient."""
    y0, states, ys = buffers
    T, B, H = out.shape
    new = out.new_empty
    omc0 = new(T, B, H)
    omcs = {i: new(T, B, len(p.targets), H) for i, p in plan.sources.items()}
    dy0 = new(T, B, 2, H)  # = gradient of xproj
    dys = {i: new(T, B, 2, len(p.targets), H) for i, p in plan.sources.items()}
    ds = new(B, plan.num_slots, H)  # gradient of each node's state at the current step
    inv_d = {i: None if p.inv_indegree is None else p.inv_indegree.to(out)
             for i, p in plan.sources.items()}
    l0, l1 = plan.leaf_slots
    inv_leaves = 1.0 / len(plan.leaves)
    steps = []
    for j in reversed(plan.order):
        src = plan.sources.get(j)
        if src is None:
            continue
        m = len(src.targets)
        g = new(B, m, H)
        steps.append((src.target_slots.to(out.device), g, g.unsqueeze(1), ys[j].unbind(0),
                      dys[j].unbind(0),
                      dys[j].view(T, B, -1).unbind(0), omcs[j].unbind(0), new(B, m, H),
                      new(B, H), wcat[j].t(), ds[:, plan.slot[j]]))
    gos, y0s, omc0s = grad_out.unbind(0), y0.view(T, B, 2, H).unbind(0), omc0.unbind(0)
    dy0s, dy0f = dy0.unbind(0), dy0.view(T, B, 2 * H).unbind(0)
    ds0, ds0u, dleaf = ds[:, 0], ds[:, 0].unsqueeze(1), ds[:, l0:l1]
    W0h_t = W0h.t()
    dh = torch.zeros_like(h)
    with _one_thread(out):
        for t in range(T - 1, -1, -1):
            if t == T - 1 or (t + 1) % block == 0:
                _prepare_block(plan, out, h, buffers, omc0, omcs, inv_d, t - t % block, t + 1)
            dht = gos[t] + dh
            torch.mul(dht.unsqueeze(1).expand_as(dleaf), inv_leaves, out=dleaf)
            for tslots, g, gu, yv, dyv, dyf, omc, tmp, dsum, w_t, dslot in steps:
                torch.index_select(ds, 1, tslots, out=g)
                torch.mul(gu, yv[t], out=dyv[t])
                torch.sum(torch.mul(g, omc[t], out=tmp), 1, out=dsum)
                if hmask is None:
                    torch.addmm(dsum, dyf[t], w_t, out=dslot)
                else:
                    torch.add(dsum, torch.mm(dyf[t], w_t).mul_(hmask), out=dslot)
            torch.mul(ds0u, y0s[t], out=dy0s[t])
            back = torch.mm(dy0f[t], W0h_t)
            if hmask is not None:
                back.mul_(hmask)
            dh = torch.addcmul(back, ds0, omc0s[t])
    # weight gradients: one matmul per source over all time steps
    hprev = torch.cat([h.unsqueeze(0), out[:-1]], 0)
    if hmask is not None:
        hprev = hprev * hmask
    dW0h = hprev.reshape(T * B, H).t() @ dy0.view(T * B, 2 * H)
    dwcat = {}
    for i in plan.sources:
        s = states[:, :, plan.slot[i]]
        if hmask is not None:
            s = s * hmask
        dwcat[i] = s.reshape(T * B, H).t() @ dys[i].view(T * B, -1)
    return dy0.view(T, B, 2 * H), dh, dW0h, dwcat


def _split_weight_grads(plan: CellPlan, dwcat: Dict[int, torch.Tensor]) -> List[torch.Tensor]:
    H = plan.nhid
    grads = {}
    for i, src in plan.sources.items():
        m = len(src.targets)
        for q, j in enumerate(src.targets):
            grads[(i, j)] = torch.cat([dwcat[i][:, q * H:(q + 1) * H],
                                       dwcat[i][:, (m + q) * H:(m + q + 1) * H]], dim=1)
    return [grads[e] for e in plan.edges]


class _DagCellFunction(torch.autograd.Function):
    """The whole recurrence over a sequence as one autograd node."""

    @staticmethod
    def forward(ctx, plan, xproj, h, hmask, W0h, *edge_weights):
        wcat = _cat_weights(plan, edge_weights)
        out, buffers = _cell_forward(plan, xproj, h, hmask, W0h, wcat)
        if any(ctx.needs_input_grad):
            ctx.plan, ctx.buffers, ctx.wcat = plan, buffers, wcat
            ctx.save_for_backward(out, h, W0h, *([hmask] if hmask is not None else []))
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        out, h, W0h, *rest = ctx.saved_tensors
        hmask = rest[0] if rest else None
        plan = ctx.plan
        if ctx.buffers is None:
            raise RuntimeError("the DAG cell's backward runs once per forward (its buffers are "
                               "reused in place); do not retain its graph")
        buffers, ctx.buffers = ctx.buffers, None
        dxproj, dh, dW0h, dwcat = _cell_backward(plan, grad_out, out, h, hmask, W0h, ctx.wcat,
                                                 buffers)
        return (None, dxproj, dh, None, dW0h, *_split_weight_grads(plan, dwcat))


class DagCell(nn.Module):
    """The recurrent DAG cell of one CellGraph; ``forward(x (T,B,ninp), h (B,H))``."""

    def __init__(self, graph: CellGraph, ninp: int, nhid: int) -> None:
        super().__init__()
        self.ninp, self.nhid = ninp, nhid
        self.plan = CellPlan.from_graph(graph, nhid)
        self.W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE))
        self.Ws = nn.ParameterDict({
            f"{i}_{j}": nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE))
            for i, j in self.plan.edges})

    def edge_weight(self, i: int, j: int) -> torch.Tensor:
        return self.Ws[f"{i}_{j}"]

    def forward(self, x: torch.Tensor, h: torch.Tensor, x_mask: Optional[torch.Tensor] = None,
                h_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        T, B, _ = x.shape
        if x_mask is not None:
            x = x * x_mask
        xproj = (x.reshape(T * B, self.ninp) @ self.W0[:self.ninp]).view(T, B, 2 * self.nhid)
        weights = [self.edge_weight(i, j) for i, j in self.plan.edges]
        out = _DagCellFunction.apply(self.plan, xproj, h, h_mask, self.W0[self.ninp:], *weights)
        return out, out[-1]


# ------------------------------------------------------------------------------ decoder + loss
_workspace = threading.local()


def _logits_buffer(rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
    """A reused scratch matrix: a fresh 100 MB tensor per batch costs more in page faults
    than the softmax itself."""
    key = (like.device, like.dtype)
    cache = getattr(_workspace, "buffers", None)
    if cache is None:
        cache = _workspace.buffers = {}
    buf = cache.get(key)
    if buf is None or buf.numel() < rows * cols:
        buf = cache[key] = like.new_empty(rows * cols)
    return buf[:rows * cols].view(rows, cols)


LOG2E = 1.4426950408889634


def _softmax_terms(w2, h_aug, targets, shift: bool):
    """Base-2 logits z = (h W^T + b) log2(e) as (V, n); returns u = 2^(z - m) in ``z``'s
    buffer, s = sum(u), m, and the target logits. Without ``shift`` m = 0 (no max pass);
    the caller checks that s stayed in range and otherwise asks again with the column max."""
    z = torch.mm(w2, h_aug.t(), out=_logits_buffer(w2.size(0), h_aug.size(0), h_aug))
    picked = z.gather(0, targets).squeeze(0)
    if shift:
        m = z.amax(0)
        z.sub_(m).clamp_min_(-EXP2_FLOOR)
    else:
        m = None
        z.clamp_min_(-EXP2_FLOOR_ABS)
    z.exp2_()
    return z, z.sum(0), m, picked


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean CE of softmax(h W^T + b), the gradient formed in the forward while logits are hot.

    Written for memory passes, since the matmuls are already near peak: logits are formed
    transposed (V, n), the layout with the fastest matmuls here, in base 2 (log2(e) and the
    bias ride in the matmul), into a reused buffer; no max pass unless the sums leave a safe
    range; the softmax normalisation and the one-hot are applied to the small (n, D) and
    (V, D) operands instead of the (V, n) matrix. Entries below 2^-100 of their column's sum
    scale are clamped so that no denormal float appears (they slow every later pass
    several-fold on x86); the softmax changes by less than 1e-8 relative, the loss not at all.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk):
        need = any(ctx.needs_input_grad[:3])
        n = h.size(0)
        w2 = torch.cat([weight, bias.unsqueeze(1)], 1).mul_(LOG2E)  # (V, D + 1), base 2
        total = h.new_zeros(())
        dh = torch.empty_like(h) if need else None
        dw = torch.zeros_like(weight) if need else None
        db = torch.zeros_like(bias) if need else None
        for a in range(0, n, chunk):
            hc, yc = h[a:a + chunk], targets[a:a + chunk]
            h_aug = torch.cat([hc, hc.new_ones(len(hc), 1)], 1)
            u, s, m, picked = _softmax_terms(w2, h_aug, yc.unsqueeze(0), shift=False)
            if not bool(torch.all((s >= SUM_MIN) & (s <= SUM_MAX))):
                u, s, m, picked = _softmax_terms(w2, h_aug, yc.unsqueeze(0), shift=True)
            lse2 = s.log2() if m is None else s.log2().add_(m)
            total += (lse2 - picked).sum() / LOG2E
            if need:
                f = s.reciprocal_().mul_(1.0 / n).unsqueeze(1)   # per-word 1 / (n sum)
                rows = dh[a:a + chunk]
                torch.mm(u.t(), weight, out=rows).mul_(f)     # softmax part
                rows.sub_(weight[yc], alpha=1.0 / n)           # one-hot part
                dw.addmm_(u, hc * f)
                dw.index_add_(0, yc, hc, alpha=-1.0 / n)
                db.addmv_(u, f.squeeze(1))
                db.index_add_(0, yc, hc.new_full((len(yc),), -1.0 / n))
        if need:
            ctx.save_for_backward(dh, dw, db)
        return total / n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        dh, dw, db = ctx.saved_tensors
        return dh * grad, dw * grad, db * grad, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         targets: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """``F.cross_entropy(h @ weight.T + bias, targets)``, faster and lighter on memory."""
    return _LinearCrossEntropy.apply(h, weight, bias, targets, chunk)


class RNNModel(nn.Module):
    """Embedding -> DAG cell -> tied decoder (a language model over ``ntoken`` words).

    Dropouts follow DARTS (``dropout`` output, ``dropouth``/``dropoutx`` the cell's h and x
    masks, ``dropouti`` embedding output, ``dropoute`` whole words); all 0 during search.
    """

    def __init__(self, graph: CellGraph, ntoken: int, ninp: int, nhid: Optional[int] = None,
                 embedding: Optional[torch.Tensor] = None, dropout: float = 0.0,
                 dropouth: float = 0.0, dropoutx: float = 0.0, dropouti: float = 0.0,
                 dropoute: float = 0.0) -> None:
        super().__init__()
        nhid = ninp if nhid is None else nhid
        if nhid != ninp:
            raise UserError(f"the decoder is tied to the embedding: --nhid ({nhid}) and "
                            f"--nhidlast must equal --emsize ({ninp})")
        self.ntoken, self.ninp, self.nhid = ntoken, ninp, nhid
        self.dropout, self.dropouth, self.dropoutx = dropout, dropouth, dropoutx
        self.dropouti, self.dropoute = dropouti, dropoute
        self.encoder = nn.Embedding(ntoken, ninp)
        self.cell = DagCell(graph, ninp, nhid)
        self.decoder_bias = nn.Parameter(torch.zeros(ntoken))
        with torch.no_grad():
            if embedding is not None:
                if tuple(embedding.shape) != (ntoken, ninp):
                    raise UserError(f"embedding matrix has shape {tuple(embedding.shape)}, "
                                    f"expected ({ntoken}, {ninp})")
                self.encoder.weight.copy_(embedding)
            else:
                self.encoder.weight.uniform_(-EMB_INITRANGE, EMB_INITRANGE)

    @property
    def decoder_weight(self) -> torch.Tensor:
        return self.encoder.weight  # tied

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return self.decoder_weight.new_zeros(batch_size, self.nhid)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor,
                generator: Optional[torch.Generator] = None):
        """(T, B) word ids -> (cell outputs (T, B, H) after output dropout, new hidden)."""
        train = self.training
        emb = embedded_dropout(self.encoder.weight, inputs, self.dropoute if train else 0.0,
                               generator)
        emb = locked_dropout(emb, self.dropouti if train else 0.0, generator)
        x_mask = h_mask = None
        if train and self.dropoutx:
            x_mask = mask2d(inputs.size(1), self.ninp, 1.0 - self.dropoutx, emb.device, generator)
        if train and self.dropouth:
            h_mask = mask2d(inputs.size(1), self.nhid, 1.0 - self.dropouth, emb.device, generator)
        out, new_hidden = self.cell(emb, hidden, x_mask, h_mask)
        out = locked_dropout(out, self.dropout if train else 0.0, generator)
        return out, new_hidden

    def log_prob(self, output: torch.Tensor) -> torch.Tensor:
        """Log-softmax over the vocabulary of cell outputs (T, B, H) -> (T, B, ntoken)."""
        logits = torch.nn.functional.linear(output, self.decoder_weight, self.decoder_bias)
        return torch.log_softmax(logits, dim=-1)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor,
             generator: Optional[torch.Generator] = None):
        """Mean next-word cross-entropy of a (T, B) batch, and the new hidden state."""
        out, new_hidden = self(inputs, hidden, generator)
        loss = linear_cross_entropy(out.reshape(-1, self.nhid), self.decoder_weight,
                                    self.decoder_bias, targets.reshape(-1))
        return loss, new_hidden


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cell_flops(graph: CellGraph, nhid: int) -> float:
    """The paper's FLOPs proxy of a cell: counted edges x nhid^2."""
    return float(graph.num_edges * nhid * nhid)


__all__ = ["CellPlan", "DagCell", "RNNModel", "linear_cross_entropy", "cell_flops", "INITRANGE"]
