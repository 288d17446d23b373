"""The batched DAG cell and the fused decoder loss against plain per-edge autograd code."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from api.spaces.dag.graph import CellGraph
from api.spaces.zoo import get_graph as get_preset
from api.spaces.autoshrink_rnn.model import CellPlan, DagCell, RNNModel, linear_cross_entropy
from api.spaces.autoshrink_rnn.space import RNN_OPS

ACT = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
       "identity": lambda v: v}


def reference_cell(cell: DagCell, graph: CellGraph, x, h, x_mask=None, h_mask=None):
    """The RNN cell written literally: one matmul per edge, autograd does the rest."""
    H = cell.nhid
    outs = []
    for t in range(x.size(0)):
        xt = x[t] * x_mask if x_mask is not None else x[t]
        hm = h * h_mask if h_mask is not None else h
        y0 = torch.cat([xt, hm], 1) @ cell.W0
        c0, h0 = y0[:, :H].sigmoid(), y0[:, H:].tanh()
        states = {0: h + c0 * (h0 - h)}
        for j in graph.active_nodes:
            contribs = []
            for i in graph.inputs(j):
                s = states[i]
                sin = s * h_mask if h_mask is not None else s
                ch = sin @ cell.edge_weight(i, j)
                c, hh = ch[:, :H].sigmoid(), ACT[graph.ops_def[j]](ch[:, H:])
                contribs.append(s + c * (hh - s))
            states[j] = torch.stack(contribs).mean(0)
        leaves = graph.leaves or [0]
        h = torch.stack([states[k] for k in leaves]).mean(0)
        outs.append(h)
    return torch.stack(outs), h


def random_graphs(n=6, count=5, seed=0):
    rng = np.random.default_rng(seed)
    graphs = []
    for k in range(count):
        ops = [RNN_OPS[i] for i in rng.integers(0, 4, n)]
        graphs.append(CellGraph.random(n, ops, 0.3 + 0.15 * k, rng, space="rnn"))
    if n != 6:
        return graphs
    graphs.append(CellGraph.complete(n, ["x", "identity", "relu", "tanh", "identity", "identity"],
                                     space="rnn"))
    empty = np.zeros((n, n), dtype=int)
    graphs.append(CellGraph(empty, ["x"] + ["tanh"] * (n - 1), space="rnn"))  # empty cell
    chain = np.zeros((n, n), dtype=int)
    chain[0, 1] = chain[1, 2] = 1
    graphs.append(CellGraph(chain, ["x", "sigmoid", "relu"] + ["tanh"] * (n - 3), space="rnn"))
    graphs.append(get_preset("shrinkrnn"))
    return graphs


def grads(tensors, loss):
    return torch.autograd.grad(loss, tensors, allow_unused=True)


@pytest.mark.parametrize("masks", [False, True])
def test_batched_cell_matches_per_edge_reference(masks):
    torch.manual_seed(0)
    T, B, ninp, H = 5, 3, 4, 6
    for graph in random_graphs():
        cell = DagCell(graph, ninp, H).double()
        x = torch.randn(T, B, ninp, dtype=torch.float64, requires_grad=True)
        h = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
        xm = hm = None
        if masks:
            xm = (torch.rand(B, ninp) > 0.3).double() / 0.7
            hm = (torch.rand(B, H) > 0.3).double() / 0.7
        w = torch.randn(T, B, H, dtype=torch.float64)  # a random linear loss on every output
        params = [x, h] + list(cell.parameters())
        out, last = cell(x, h, xm, hm)
        ref, ref_last = reference_cell(cell, graph, x, h, xm, hm)
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(last, ref_last)
        g = grads(params, (out * w).sum() + last.square().sum())
        g_ref = grads(params, (ref * w).sum() + ref_last.square().sum())
        for a, b in zip(g, g_ref):
            if b is None:  # parameter unused by the reference: must get zero / no gradient
                assert a is None or torch.count_nonzero(a) == 0
            else:
                torch.testing.assert_close(a, b)


def test_backward_block_sizes_agree_and_second_backward_is_refused():
    """The backward prepares its factors in blocks of steps; any block size is exact."""
    from api.spaces.autoshrink_rnn import recurrence as rnn_model

    torch.manual_seed(1)
    graph = random_graphs()[5]
    cell = DagCell(graph, 3, 4).double()
    x = torch.randn(7, 2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.float64)
    grads_by_block = []
    for block in (1, 3, 4, 100):
        original = rnn_model._cell_backward.__defaults__
        rnn_model._cell_backward.__defaults__ = (block,)
        try:
            out, _ = cell(x, h)
            grads_by_block.append(torch.autograd.grad(out.square().sum(), [x, cell.W0]))
        finally:
            rnn_model._cell_backward.__defaults__ = original
    for other in grads_by_block[1:]:
        for a, b in zip(grads_by_block[0], other):
            torch.testing.assert_close(a, b)
    out, _ = cell(x, h)
    loss = out.sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="once per forward"):
        loss.backward()


def test_plan_computes_only_active_nodes():
    mask = np.zeros((6, 6), dtype=int)
    mask[0, 2] = mask[2, 4] = mask[1, 3] = mask[3, 5] = 1  # node 1 unreachable -> 1->3, 3->5 dead
    g = CellGraph(mask, ["x", "tanh", "relu", "tanh", "sigmoid", "identity"], space="rnn")
    plan = CellPlan.from_graph(g, 8)
    assert plan.order == (0, 2, 4)
    assert plan.edges == ((0, 2), (2, 4))
    assert plan.leaves == (4,)
    assert sorted(DagCell(g, 8, 8).Ws.keys()) == ["0_2", "2_4"]
    empty = CellGraph(np.zeros((3, 3), dtype=int), ["x", "tanh", "relu"], space="rnn")
    assert CellPlan.from_graph(empty, 4).leaves == (0,)


def test_fused_cross_entropy_matches_autograd():
    torch.manual_seed(0)
    h = torch.randn(37, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(11, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 11, (37,))
    for chunk in (8, 1000):
        loss = linear_cross_entropy(h, w, b, y, chunk=chunk)
        ref = F.cross_entropy(F.linear(h, w, b), y)
        torch.testing.assert_close(loss, ref)
        for a, r in zip(grads([h, w, b], 3 * loss), grads([h, w, b], 3 * ref)):
            torch.testing.assert_close(a, r)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, b, y),
                                   F.cross_entropy(F.linear(h, w, b), y))


@pytest.mark.parametrize("scale, shift", [(300.0, 0.0), (1.0, -200.0)])
def test_fused_cross_entropy_extreme_logits(scale, shift):
    """Logits far outside exp's float range take the max-shifted path and stay exact."""
    torch.manual_seed(0)
    h = (torch.randn(9, 4) * scale).requires_grad_()
    w = torch.randn(6, 4, requires_grad=True)
    b = torch.full((6,), shift, requires_grad=True)
    y = torch.randint(0, 6, (9,))
    loss = linear_cross_entropy(h, w, b, y)
    ref = F.cross_entropy(F.linear(h, w, b), y)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-3)
    for a, r in zip(grads([h, w, b], loss), grads([h, w, b], ref)):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-5)


def test_language_model_loss_and_eval_path():
    torch.manual_seed(0)
    graph = random_graphs()[5]
    model = RNNModel(graph, ntoken=13, ninp=6)
    inputs = torch.randint(0, 13, (4, 3))
    targets = torch.randint(0, 13, (4, 3))
    hidden = model.init_hidden(3)
    loss, new_hidden = model.loss(inputs, targets, hidden)
    out, _ = model(inputs, hidden)
    ref = F.nll_loss(model.log_prob(out).view(-1, 13), targets.view(-1))
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert model.encoder.weight.grad is not None and model.cell.W0.grad is not None
    model.eval()
    with torch.no_grad():
        out_eval, h_eval = model(inputs, hidden)
    torch.testing.assert_close(out_eval, out)
    torch.testing.assert_close(h_eval, new_hidden)


def test_dropout_masks_only_in_training():
    torch.manual_seed(0)
    graph = random_graphs()[5]
    model = RNNModel(graph, ntoken=13, ninp=6, dropout=0.5, dropouth=0.5, dropoutx=0.5,
                     dropouti=0.5, dropoute=0.1)
    inputs = torch.randint(0, 13, (4, 3))
    hidden = model.init_hidden(3)
    model.eval()
    a, _ = model(inputs, hidden)
    b, _ = model(inputs, hidden)
    torch.testing.assert_close(a, b)
    model.train()
    c, _ = model(inputs, hidden)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("masks", [False, True])
def test_batch_halves_in_threads_match_reference(masks):
    """With 2+ CPU threads and B >= 64 the step loops run on two batch halves in threads."""
    from api.spaces.autoshrink_rnn.recurrence import _batch_parts

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        graph = random_graphs()[5]  # the complete 6-node cell
        cell = DagCell(graph, 5, 6).double()
        x = torch.randn(4, 64, 5, dtype=torch.float64, requires_grad=True)
        h = torch.randn(64, 6, dtype=torch.float64, requires_grad=True)
        assert _batch_parts(x) == [(0, 32), (32, 64)]
        xm = hm = None
        if masks:
            xm = (torch.rand(64, 5) > 0.3).double() / 0.7
            hm = (torch.rand(64, 6) > 0.3).double() / 0.7
        params = [x, h] + list(cell.parameters())
        out, last = cell(x, h, xm, hm)
        ref, _ = reference_cell(cell, graph, x, h, xm, hm)
        torch.testing.assert_close(out, ref)
        w = torch.randn_like(out)
        for a, b in zip(grads(params, (out * w).sum()), grads(params, (ref * w).sum())):
            torch.testing.assert_close(a, b)
    finally:
        torch.set_num_threads(threads)
