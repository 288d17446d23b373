"""The DAG cell's recurrence as one autograd Function: a fast forward and a hand-written backward.

Cell, with input x_t and previous state h::

    [c0, h0] = [x_t ; h] W0                 s0 = h + sigmoid(c0) * (tanh(h0) - h)
    edge i->j: [c, h'] = s_i W_ij           contribution s_i + sigmoid(c) * (f_j(h') - s_i)
    s_j = mean of the contributions into j  h_t = mean of the leaves (s0 for the empty cell)

The caller applies W0's input half to all steps at once. Only active nodes are computed, one
matmul per source node; the forward builds no autograd graph, and the backward walks time in
reverse. ``tests/test_rnn_model.py`` checks it against a plain per-edge autograd version.

Fidelity notes: docs/fidelity/autoshrink.md.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.scoped import torch_threads
from api.spaces.autoshrink_rnn.space import RNN_OPS


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


# The per-step loops below index tuples of views made up front with ``unbind`` (a few C++
# calls) instead of slicing tensors at every step, and use fused ops (``lerp`` for the
# highway update, ``out=`` into preallocated buffers): at B=128, H=100 a step is ~50 small
# ops, so per-op overhead, not arithmetic, is what the element-wise part costs.

def _one_thread(like: torch.Tensor):
    """Keep each step's small ops and matmuls on one thread: a multi-threaded matmul per
    step pays an OpenMP barrier each time, which costs little on an idle machine and many
    times the matmul when another process holds a core. Large ops keep every thread.

    Scoped: the caller's count is restored on exit, exception included, and by the thread
    that changed it (OpenMP's count is per thread). :func:`_run_parts` returns only once
    every batch range has finished, so no pool thread still runs when the count changes back."""
    return torch_threads(1 if like.device.type == "cpu" else None)


_POOL: Dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of its parent's threads
    os.register_at_fork(after_in_child=_POOL.clear)


def _batch_parts(like: torch.Tensor) -> List[Tuple[int, int]]:
    """Batch ranges that run their step loops in parallel threads: one per CPU thread (at
    most 2, 32+ rows each). Rows of the recurrence are independent, ATen ops release the
    GIL, and each thread's ops stay single-threaded, so a busy core never stalls the other."""
    B = like.size(1)
    parts = min(2, torch.get_num_threads(), B // 32) if like.device.type == "cpu" else 1
    if parts <= 1:
        return [(0, B)]
    cut = B // 2
    return [(0, cut), (cut, B)]


def _no_grad_call(fn, *args):
    with torch.no_grad():  # grad mode is per thread; the caller's is off
        return fn(*args)


def _run_parts(parts, fn) -> list:
    """``fn(b0, b1)`` for every batch range, concurrently when there are several."""
    if len(parts) == 1:
        return [fn(*parts[0])]
    pool = _POOL.get(len(parts))
    if pool is None:
        pool = _POOL[len(parts)] = ThreadPoolExecutor(len(parts), "dag-cell")
    futures = [pool.submit(_no_grad_call, fn, b0, b1) for b0, b1 in parts[1:]]
    try:
        results = [fn(*parts[0])]
    finally:  # even when this part raised: nothing may run on after the call (the thread
        wait(futures)  # count is restored and the buffers are released when it returns)
    return results + [f.result() for f in futures]


def _cell_forward(plan: CellPlan, xproj: torch.Tensor, h: torch.Tensor,
                  hmask: Optional[torch.Tensor], W0h: torch.Tensor,
                  wcat: Dict[int, torch.Tensor]):
    """Run the recurrence without autograd; returns the outputs and the step buffers.

    Buffers: ``y0`` (T, B, 2H) = [sigmoid(c0), tanh(h0)]; ``states`` (T, B, slots, H);
    ``y[i]`` (T, B, 3, m, H) = [sigmoid(c), f(h'), -] of source i's out-edges and
    ``contribs[i]`` (T, B, m, H) their contributions.
    """
    T, B, _ = xproj.shape
    H = plan.nhid
    new = xproj.new_empty
    out = new(T, B, H)
    y0 = new(T, B, 2 * H)
    states = xproj.new_zeros(T, B, plan.num_slots, H)
    # third component: room for the backward's 1 - c next to its other two factors
    ys = {i: new(T, B, 3, len(p.targets), H) for i, p in plan.sources.items()}
    contribs = {i: new(T, B, len(p.targets), H) for i, p in plan.sources.items()}

    def part(b0: int, b1: int) -> None:
        rows = slice(b0, b1)
        _forward_steps(plan, xproj[:, rows], h[rows], None if hmask is None else hmask[rows],
                       W0h, wcat, out[:, rows], y0[:, rows], states[:, rows],
                       {i: y[:, rows] for i, y in ys.items()},
                       {i: c[:, rows] for i, c in contribs.items()})

    parts = _batch_parts(xproj)  # before _one_thread: it depends on the thread count
    with _one_thread(xproj):
        _run_parts(parts, part)
    return out, (y0, states, ys, contribs)


def _forward_steps(plan, xproj, h, hmask, W0h, wcat, out, y0, states, ys, contribs) -> None:
    """The recurrence over the time steps of one batch range (all tensors are its views)."""
    T, B, _ = xproj.shape
    H = plan.nhid
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
            1.0 / d if d > 1 else None, wcat[j],
            y.view(T, B, -1)[:, :, :2 * len(src.targets) * H].unbind(0),
            y[:, :, 0].unbind(0), y[:, :, 1].unbind(0),
            [(op, y[:, :, 1, a:b].unbind(0)) for op, a, b in src.groups if op != "identity"],
            src.target_slots.to(xproj.device), contribs[j].unbind(0)))
    l0, l1 = plan.leaf_slots
    single_leaf = l1 - l0 == 1 and plan.indegree.get(plan.leaves[0], 1) == 1
    leaf_views = (states[:, :, l0] if single_leaf else states[:, :, l0:l1]).unbind(0)
    leaf_w = plan.leaf_weight.to(xproj)
    h_prev = h
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
            torch.lerp(sbv[t], fv[t], cv[t], out=contrib[t])  # s + c (f - s), each out-edge
            st.index_add_(1, tslots, contrib[t])
        if single_leaf:
            outs[t].copy_(leaf_views[t])
        else:
            torch.sum(leaf_views[t] * leaf_w, dim=1, out=outs[t])
        h_prev = outs[t]


def _prepare_block(plan: CellPlan, out: torch.Tensor, h: torch.Tensor, buffers, omc0,
                   inv_d, t0: int, t1: int) -> None:
    """Turn the forward buffers of steps t0..t1-1, in place, into the step-independent
    factors of the backward, a block of steps at a time just before the sweep needs them.

    ``y0`` becomes [d s0/d pre_c0, d s0/d pre_h0]; ``y[i]`` becomes [d/d pre_c, d/d pre_h',
    d/d s] of each contribution ``s + c (f - s)`` (the last is 1 - c); edge
    factors include 1/indegree of their target, so node gradients need no extra scaling.
    The saved contributions give c (f - s) = contribution - s without recomputing it.
    """
    y0, states, ys, contribs = buffers
    H = plan.nhid
    hprev = out[t0 - 1:t1 - 1] if t0 > 0 else torch.cat([h.unsqueeze(0), out[:t1 - 1]], 0)
    c0, g0 = y0[t0:t1, :, :H], y0[t0:t1, :, H:]
    omc = torch.sub(1.0, c0, out=omc0[t0:t1])
    g0.copy_(c0 * (1.0 - g0 * g0))
    torch.sub(states[t0:t1, :, 0], hprev, out=c0).mul_(omc)  # s0 - h = c0 (g0 - h)
    for i, src in plan.sources.items():
        c, f, omc = ys[i][t0:t1, :, 0], ys[i][t0:t1, :, 1], ys[i][t0:t1, :, 2]
        inv = inv_d[i]
        if inv is None:
            torch.sub(1.0, c, out=omc)
        else:
            torch.addcmul(inv, c, inv, value=-1.0, out=omc)  # (1 - c) / indegree
        for op, lo, hi in src.groups:
            value = _gate_times_act_grad(op, c[:, :, lo:hi], f[:, :, lo:hi])
            if inv is not None:
                torch.mul(value, inv[:, :, lo:hi], out=f[:, :, lo:hi])
            else:
                f[:, :, lo:hi] = value
        s = states[t0:t1, :, plan.slot[i]].unsqueeze(2)
        torch.sub(contribs[i][t0:t1], s, out=c).mul_(omc)  # c (f - s) (1 - c) / indegree


def _cell_backward(plan: CellPlan, grad_out: torch.Tensor, out: torch.Tensor, h: torch.Tensor,
                   hmask: Optional[torch.Tensor], W0h: torch.Tensor,
                   wcat: Dict[int, torch.Tensor], buffers, block: int = 4) -> Tuple:
    """Reverse-time sweep (per batch range, like the forward), then the weight gradients."""
    y0, states, ys, contribs = buffers
    T, B, H = out.shape
    new = out.new_empty
    omc0 = new(T, B, H)
    dy0 = new(T, B, 2, H)  # = gradient of xproj
    # per source: [d pre_c, d pre_h', g (1 - c)]; the first two rows are the matmul operand
    dys = {i: new(T, B, 3, len(p.targets), H) for i, p in plan.sources.items()}
    inv_d = {i: None if p.inv_indegree is None else p.inv_indegree.to(out)
             for i, p in plan.sources.items()}

    def part(b0: int, b1: int) -> torch.Tensor:
        r = slice(b0, b1)
        sliced = (y0[:, r], states[:, r], {i: y[:, r] for i, y in ys.items()},
                  {i: c[:, r] for i, c in contribs.items()})
        return _backward_steps(plan, grad_out[:, r], out[:, r], h[r],
                               None if hmask is None else hmask[r], W0h, wcat, sliced,
                               omc0[:, r], dy0[:, r], {i: d[:, r] for i, d in dys.items()},
                               inv_d, block)

    parts = _batch_parts(out)
    with _one_thread(out):
        dh = torch.cat(_run_parts(parts, part), 0)
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
        m = len(plan.sources[i].targets)
        dwcat[i] = s.reshape(T * B, H).t() @ dys[i].view(T * B, -1)[:, :2 * m * H]
    return dy0.view(T, B, 2 * H), dh, dW0h, dwcat


def _backward_steps(plan, grad_out, out, h, hmask, W0h, wcat, buffers, omc0, dy0, dys, inv_d,
                    block: int) -> torch.Tensor:
    """The reverse-time sweep of one batch range: each step multiplies the prepared factors
    by the incoming gradient. Returns the gradient of the initial hidden state."""
    T, B, H = out.shape
    new = out.new_empty
    ds = new(B, plan.num_slots, H)  # gradient of each node's state at the current step
    l0, l1 = plan.leaf_slots
    inv_leaves = 1.0 / len(plan.leaves)
    steps = []
    for j in reversed(plan.order):
        src = plan.sources.get(j)
        if src is None:
            continue
        m = len(src.targets)
        g = new(B, m, H)
        steps.append((src.target_slots.to(out.device), g, g.unsqueeze(1), buffers[2][j].unbind(0),
                      dys[j].unbind(0), dys[j].view(T, B, -1)[:, :, :2 * m * H].unbind(0),
                      dys[j][:, :, 2].unbind(0), new(B, H), wcat[j].t(), ds[:, plan.slot[j]]))
    gos, omc0s = grad_out.unbind(0), omc0.unbind(0)
    y0s = buffers[0].view(T, B, 2, H).unbind(0)
    dy0s, dy0f = dy0.unbind(0), dy0.view(T, B, 2 * H).unbind(0)
    ds0, ds0u, dleaf = ds[:, 0], ds[:, 0].unsqueeze(1), ds[:, l0:l1]
    W0h_t = W0h.t()
    dh = torch.zeros_like(h)
    for t in range(T - 1, -1, -1):
        if t == T - 1 or (t + 1) % block == 0:
            _prepare_block(plan, out, h, buffers, omc0, inv_d, t - t % block, t + 1)
        dht = gos[t] + dh
        torch.mul(dht.unsqueeze(1).expand_as(dleaf), inv_leaves, out=dleaf)
        for tslots, g, gu, yv, dyv, dyf, dyo, dsum, w_t, dslot in steps:
            torch.index_select(ds, 1, tslots, out=g)
            torch.mul(gu, yv[t], out=dyv[t])
            torch.sum(dyo[t], 1, out=dsum)
            if hmask is None:
                torch.addmm(dsum, dyf[t], w_t, out=dslot)
            else:
                torch.add(dsum, torch.mm(dyf[t], w_t).mul_(hmask), out=dslot)
        torch.mul(ds0u, y0s[t], out=dy0s[t])
        back = torch.mm(dy0f[t], W0h_t)
        if hmask is not None:
            back.mul_(hmask)
        dh = torch.addcmul(back, ds0, omc0s[t])
    return dh


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


def dag_cell(plan: CellPlan, xproj: torch.Tensor, h: torch.Tensor, hmask: Optional[torch.Tensor],
             W0h: torch.Tensor, edge_weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cell outputs (T, B, H) from the input projections ``xproj`` (T, B, 2H) = x W0[:ninp],
    the initial state ``h`` (B, H), an optional h dropout mask, W0's state half and the edge
    weights in ``plan.edges`` order."""
    return _DagCellFunction.apply(plan, xproj, h, hmask, W0h, *edge_weights)

