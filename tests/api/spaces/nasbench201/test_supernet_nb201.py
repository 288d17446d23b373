"""The NAS-Bench-201 weight-sharing supernet (AutoDL's DARTS/GDAS search model): the three
forward modes against the literal formulas of AutoDL's ``NAS201SearchCell``, GDAS's
sampled-op-only property, ``derive`` and the parameter counts of ``TinyNetworkDarts``."""
from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from api.errors import UserError
from api.spaces import get_space
from api.spaces.nasbench201 import EDGES, OPS, Cell, arch_at, index_of
from api.spaces.nasbench201.supernet import NASBench201Supernet, SearchCell
from api.spaces.supernet import MODES, gumbel_hard

SPACE = get_space("nas-bench-201")


def tiny(seed: int = 0, double: bool = False, **kwargs) -> NASBench201Supernet:
    torch.manual_seed(seed)
    net = SPACE.supernet("cifar10", C=kwargs.pop("C", 4), N=kwargs.pop("N", 1), **kwargs)
    return net.double() if double else net


def batch(double: bool = False, n: int = 3, size: int = 8):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return (x.double() if double else x), y


def search_cells(net):
    return [m for m in net.cells if isinstance(m, SearchCell)]


def literal_forward(net, x, cell_fn):
    """The network around ``cell_fn(cell, h)``, the cell written out as AutoDL writes it."""
    h = net.stem(x)
    for block in net.cells:
        h = cell_fn(block, h) if isinstance(block, SearchCell) else block(h)
    return net.classifier(net.global_pooling(net.lastact(h)).flatten(1))


def literal_cell(cell, h, edge_fn):
    nodes = [h]
    for node in (1, 2, 3):
        nodes.append(sum(edge_fn(k, cell.edges[k], nodes[frm])
                         for k, (to, frm) in enumerate(EDGES) if to == node))
    return nodes[3]


def count_op_calls(net):
    """Forward hooks on every op of every edge: Counter of (cell, edge, op) -> calls."""
    calls = Counter()
    handles = []
    for c, cell in enumerate(search_cells(net)):
        for k, ops in enumerate(cell.edges):
            for j, op in enumerate(ops):
                handles.append(op.register_forward_hook(
                    lambda *_a, key=(c, k, j): calls.update([key])))
    return calls, handles


def grads_of(params):
    return [None if p.grad is None else p.grad.clone() for p in params]


# ---------------------------------------------------------------------- structure
def test_full_size_parameter_count_equals_autodl_tiny_network_darts():
    """C=16, N=5: the counts of AutoDL's TinyNetworkDarts/TinyNetworkGDAS(16, 5, 4, classes,
    NAS_BENCH_201, affine=False, track_running_stats) (checked by running the official code
    from a copy outside the repo). By structure: stem 3*16*9 + BN 2*16 = 464; per cell at
    width c, 6 edges x (conv1x1 c*c + bias c, conv3x3 9c^2 + bias c; their BN has no affine)
    = 60c^2 + 12c, so 5 cells at 16/32/64 = 77,760 + 309,120 + 1,232,640; ResNet blocks
    (affine BN, bias-free convs) 14,464 and 57,600; last BN 128; classifier 64*10 + 10."""
    expected = {"cifar10": 1_692_826, "cifar100": 1_698_676, "imagenet16": 1_699_976}
    for dataset, weights in expected.items():
        for track in (True, False):
            net = SPACE.supernet(dataset, track_running_stats=track)
            assert sum(p.numel() for p in net.weight_parameters()) == weights
            assert [tuple(p.shape) for p in net.arch_parameters()] == [(6, 5)]
    net = SPACE.supernet("cifar10")
    assert 464 + 77_760 + 309_120 + 1_232_640 + 14_464 + 57_600 + 128 + 650 == 1_692_826
    assert len(net.cells) == 17 and len(search_cells(net)) == 15
    # running statistics: 14,170 buffer elements with tracking, 550 (stem/blocks/last BN) without
    assert sum(b.numel() for b in net.buffers()) == 14_170
    assert sum(b.numel() for b in SPACE.supernet("cifar10", track_running_stats=False)
               .buffers()) == 550


def test_batch_norm_settings_follow_autodl():
    net = tiny(affine=False, track_running_stats=False)
    for cell in search_cells(net):
        for ops in cell.edges:
            for name in ("nor_conv_1x1", "nor_conv_3x3"):
                _, conv, bn = ops[OPS.index(name)]
                assert conv.bias is not None  # AutoDL: bias = not affine
                assert bn.weight is None and bn.running_mean is None
    # the stem, the ResNet blocks and the last BN stay affine with running statistics
    for bn in (net.stem[1], net.lastact[0], net.cells[1].conv_a[2]):
        assert bn.weight is not None and bn.running_mean is not None
    net = tiny(track_running_stats=True)
    bn = search_cells(net)[0].edges[0][OPS.index("nor_conv_3x3")][2]
    assert bn.weight is None and bn.running_mean is not None


def test_parameter_sets_and_init():
    net = tiny()
    alphas = net.arch_parameters()
    assert len(alphas) == 1 and alphas[0] is net.alpha_cell
    assert all(p is not net.alpha_cell for p in net.weight_parameters())
    assert net.alpha_cell.abs().max().item() < 1e-2  # 1e-3 * randn
    assert "fixed" in MODES and "softmax" in MODES and "gumbel" in MODES


# ---------------------------------------------------------------------- softmax (DARTS)
def test_softmax_mode_is_darts_and_trains_alpha_and_weights():
    net = tiny(double=True)
    with torch.no_grad():
        net.alpha_cell.normal_()
    x, y = batch(double=True)
    F.cross_entropy(net(x), y).backward()
    got_alpha, got_w = net.alpha_cell.grad.clone(), grads_of(net.weight_parameters())
    assert torch.isfinite(got_alpha).all() and got_alpha[:, 1:].abs().min() > 0
    assert all(g is not None for g in got_w)  # every op of every edge ran
    net.zero_grad(set_to_none=True)

    weights = torch.softmax(net.alpha_cell, dim=-1)  # AutoDL: sum over all 5 ops, none too
    out = literal_forward(net, x, lambda cell, h: literal_cell(
        cell, h, lambda k, ops, t: sum(op(t) * weights[k][j] for j, op in enumerate(ops))))
    F.cross_entropy(out, y).backward()
    assert torch.allclose(net.alpha_cell.grad, got_alpha, atol=1e-12)
    for a, b in zip(grads_of(net.weight_parameters()), got_w):
        assert torch.allclose(a, b, atol=1e-12)


# ---------------------------------------------------------------------- gumbel (GDAS)
def test_gumbel_mode_is_gdas_forward_with_straight_through_gradient():
    net = tiny(double=True)
    with torch.no_grad():
        net.alpha_cell.normal_()
    x, y = batch(double=True)
    logits = net(x, mode="gumbel", tau=2.0, generator=torch.Generator().manual_seed(7))
    F.cross_entropy(logits, y).backward()
    got_alpha, got_w = net.alpha_cell.grad.clone(), grads_of(net.weight_parameters())
    # straight-through: every alpha of an edge into the output node gets a gradient (an edge
    # whose target node feeds only sampled `none` ops gets 0, in AutoDL too)
    assert torch.isfinite(got_alpha).all() and (got_alpha[3:] != 0).all()
    assert any(g is None for g in got_w)  # unsampled ops got nothing
    net.zero_grad(set_to_none=True)

    # AutoDL's forward_gdas with the same sample
    hard, index = gumbel_hard(net.alpha_cell, 2.0, generator=torch.Generator().manual_seed(7))
    assert net.last_sample == Cell.from_op_indices(index.tolist())
    out = literal_forward(net, x, lambda cell, h: literal_cell(
        cell, h, lambda k, ops, t: sum(hard[k][j] * op(t) if j == index[k].item() else hard[k][j]
                                       for j, op in enumerate(ops))))
    assert torch.allclose(out, logits, atol=1e-12)
    F.cross_entropy(out, y).backward()
    assert torch.allclose(net.alpha_cell.grad, got_alpha, atol=1e-12)
    for a, b in zip(grads_of(net.weight_parameters()), got_w):
        assert (a is None) == (b is None)
        assert a is None or torch.allclose(a, b, atol=1e-12)


def test_gumbel_runs_only_the_sampled_op_of_each_edge():
    net = tiny(N=2)
    calls, handles = count_op_calls(net)
    x, _ = batch()
    for step in range(4):
        calls.clear()
        net(x, mode="gumbel", tau=10.0 / (step + 1))
        sampled = net.last_sample.op_indices()
        expected = Counter({(c, k, sampled[k]): 1 for c in range(len(search_cells(net)))
                            for k in range(len(EDGES))})
        assert calls == expected
    calls.clear()
    net(x)  # softmax runs every op but none (whose term, 0 * w, is 0 with a 0 gradient)
    assert calls == Counter({(c, k, j): 1 for c in range(len(search_cells(net)))
                             for k in range(len(EDGES)) for j in range(1, len(OPS))})
    for h in handles:
        h.remove()


def test_gumbel_needs_tau_and_modes_are_checked():
    net = tiny()
    x, _ = batch()
    with pytest.raises(ValueError, match="tau"):
        net(x, mode="gumbel")
    with pytest.raises(ValueError, match="unknown supernet mode"):
        net(x, mode="hard")
    with pytest.raises(ValueError, match="arch"):
        net(x, mode="fixed")


# ---------------------------------------------------------------------- fixed (one cell)
def test_fixed_mode_runs_exactly_the_cell_and_trains_weights_only():
    cell = Cell(("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1",
                 "nor_conv_3x3"))
    net = tiny(double=True, N=2)
    calls, handles = count_op_calls(net)
    x, y = batch(double=True)
    out = net(x, mode="fixed", arch=cell)
    chosen = cell.op_indices()
    assert calls == Counter({(c, k, chosen[k]): 1 for c in range(6) for k in range(6)})
    for h in handles:
        h.remove()
    F.cross_entropy(out, y).backward()
    assert net.alpha_cell.grad is None
    conv3 = search_cells(net)[0].edges[0][OPS.index("nor_conv_3x3")][1]
    assert conv3.weight.grad is not None and conv3.weight.grad.abs().sum() > 0
    # the string form works too, and equals softmax mode with a one-hot alpha (float64)
    assert torch.equal(net(x, mode="fixed", arch=SPACE.format(cell)), net(x, mode="fixed",
                                                                            arch=cell))
    with torch.no_grad():
        net.alpha_cell.fill_(-1e4).scatter_(1, torch.tensor(chosen).unsqueeze(1), 1e4)
    assert torch.allclose(net(x), net(x, mode="fixed", arch=cell), atol=1e-10)


# ---------------------------------------------------------------------- edge weights, derive
def test_edge_weights_are_the_detached_softmax():
    net = tiny()
    weights = net.edge_weights()
    assert list(weights) == ["cell"]
    w = weights["cell"]
    assert w.shape == (6, 5) and not w.requires_grad
    assert torch.allclose(w, torch.softmax(net.alpha_cell, -1).detach())
    assert torch.allclose(w.sum(-1), torch.ones(6))


def test_derive_takes_the_argmax_over_all_ops_none_included():
    net = tiny()
    wanted = ("none", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none")
    with torch.no_grad():
        net.alpha_cell.copy_(torch.randn(6, 5) * 0.1)
        for k, op in enumerate(wanted):
            net.alpha_cell[k, OPS.index(op)] = 1.0 + k * 0.01
    derived = net.derive()
    assert isinstance(derived, Cell) and derived.ops == wanted
    assert SPACE.parse(SPACE.format(derived)) == derived
    assert SPACE.format(derived) == ("|none~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|"
                                     "nor_conv_1x1~1|none~2|")
    index = SPACE.index(derived)
    assert index == index_of(derived) and arch_at(index) == derived
    # the freshly initialised supernet derives a valid cell too
    fresh = tiny(seed=3).derive()
    assert SPACE.parse(SPACE.format(fresh)) == fresh and 0 <= SPACE.index(fresh) < 15_625


# ---------------------------------------------------------------------- the space's door
def test_space_supernet_arguments():
    net = SPACE.supernet("cifar100", C=4, N=1)
    assert net.classifier.out_features == 100 and net.C == 4 and net.N == 1
    assert not net.affine and net.track_running_stats
    assert SPACE.supernet("imagenet16", C=4, N=1).classifier.out_features == 120
    assert SPACE.supernet("imagefolder", C=4, N=1, num_classes=7).classifier.out_features == 7
    with pytest.raises(UserError, match="layers"):
        SPACE.supernet("cifar10", layers=5)
    with pytest.raises(UserError, match="unknown dataset"):
        SPACE.supernet("mnist")
    with pytest.raises(UserError, match="C, N"):
        SPACE.supernet("cifar10", C=0)
    x, _ = batch(size=16)
    assert SPACE.supernet("cifar10", C=4, N=1, track_running_stats=False)(x).shape == (3, 10)
