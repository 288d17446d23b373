"""The DARTS CNN space's supernet: DARTS's search network (softmax), GDAS's sampled path
(gumbel), GDAS-FRC, and the derivation rules."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from api.errors import UserError
from api.spaces import get_space
from api.spaces.darts.genotype import PRIMITIVES
from api.spaces.darts.supernet import (FRC_REDUCE, DartsSupernet, FixedReductionCell, MixedOp,
                                       SearchCell)
from api.spaces.supernet import Supernet

SPACE = get_space("darts")
TINY = dict(C=4, layers=3)  # cells: reduce, reduce, normal (reductions at 1 and 2 of 3)


def _batch(n: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


# --------------------------------------------------------------------------- structure
def test_full_size_parameter_count_is_darts():
    """quark0/darts cnn/model_search.py Network(16, 10, 8) counts 1,930,618 parameters (its
    train_search logs "param size = 1.930618MB"); CIFAR-100: 1,953,748; a 2-node toy
    Network(4, 10, 3, steps=2, multiplier=2): 26,958 (counted by building the official code)."""
    net = SPACE.supernet("cifar10")
    assert isinstance(net, DartsSupernet) and isinstance(net, Supernet)
    assert sum(p.numel() for p in net.weight_parameters()) == 1930618
    assert [tuple(a.shape) for a in net.arch_parameters()] == [(14, 8), (14, 8)]
    assert [i for i, c in enumerate(net.cells) if c.reduction] == [2, 5]
    assert all(not m.affine for m in net.cells.modules() if isinstance(m, torch.nn.BatchNorm2d))
    torch.manual_seed(0)
    small = SPACE.supernet("cifar100", C=4, layers=3, steps=2, multiplier=2)
    assert sum(p.numel() for p in small.weight_parameters()) == 26958 - 10 * 33 + 100 * 33
    assert abs(float(small.alphas_normal.detach().std()) - 1e-3) < 1e-3


def test_state_dict_names_are_darts():
    net = DartsSupernet(**TINY)
    keys = set(net.state_dict())
    # a pooling op is Sequential(pool, BN), a sep conv DARTS's .op Sequential
    assert "cells.0._ops.0._ops.1.1.running_mean" in keys
    assert "cells.0._ops.0._ops.4.op.1.weight" in keys
    assert {"stem.0.weight", "classifier.weight", "alphas_normal", "alphas_reduce"} <= keys
    assert {n for n, _ in net.named_parameters() if n.startswith("alpha")} == \
        {"alphas_normal", "alphas_reduce"}
    assert len(list(net.weight_parameters())) + 2 == len(list(net.parameters()))


def test_bad_settings_are_user_errors():
    for kwargs in (dict(C=3), dict(layers=0), dict(multiplier=5), dict(C=2, frc=True),
                   dict(width=3)):
        with pytest.raises(UserError):
            SPACE.supernet(**kwargs)
    with pytest.raises(UserError):
        SPACE.supernet("mnist")
    assert SPACE.supernet("imagefolder", num_classes=3, **TINY).classifier.out_features == 3


# --------------------------------------------------------------------------- forward modes
def _grads(net, loss):
    net.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad for n, p in net.named_parameters()}


@pytest.mark.parametrize("mode", ["softmax", "gumbel"])
def test_forward_backward_reaches_alphas_and_weights(mode):
    torch.manual_seed(0)
    net = DartsSupernet(**TINY)
    x, y = _batch()
    logits = net(x, mode=mode, tau=10.0)
    assert logits.shape == (2, 10)
    grads = _grads(net, F.cross_entropy(logits, y))
    for kind in ("normal", "reduce"):
        # every edge's alphas get a gradient (softmax coupling inside the hard sample), but
        # in GDAS an edge that sampled ``none`` (0 * hard weight): its gradient is 0
        live = grads[f"alphas_{kind}"].abs().sum(dim=1) > 0
        if mode == "softmax":
            assert live.all(), kind
        else:
            none = torch.tensor(net.last_sample[kind]) == PRIMITIVES.index("none")
            assert torch.equal(live, ~none), kind
    assert grads["stem.0.weight"].abs().sum() > 0 and grads["classifier.weight"].abs().sum() > 0


def test_gumbel_runs_only_the_sampled_op():
    torch.manual_seed(1)
    net = DartsSupernet(**TINY)
    calls = {}
    hooks = []

    def count(key):
        return lambda mod, inp, out: calls.setdefault(key, []).append(mod)

    for cname, cell in net.cells.named_children():
        for e, mixed in enumerate(cell._ops):
            for k, op in enumerate(mixed._ops):
                key = (int(cname), e, k)
                # the op itself, and its first layer after the ReLU (the softmax mode runs
                # the conv ops' layers after one shared ReLU)
                hooks.append(op.register_forward_hook(count(key)))
                if hasattr(op, "op"):
                    hooks.append(op.op[1].register_forward_hook(count(key)))
    x, _ = _batch()
    for tau in (10.0, 0.1):
        calls.clear()
        net(x, mode="gumbel", tau=tau)
        for c, cell in enumerate(net.cells):
            sample = net.last_sample["reduce" if cell.reduction else "normal"]
            ran = sorted((e, k) for (cc, e, k) in calls if cc == c)
            assert ran == list(enumerate(sample)), (c, ran, sample)
        # each sampled op ran once (its own forward, plus its inner layer when it has one)
        assert all(len(mods) == len(set(map(id, mods))) for mods in calls.values())
    # the softmax mode runs every op but ``none`` on every edge
    calls.clear()
    net(x)
    n_edges = sum(len(cell._ops) for cell in net.cells)
    assert len(calls) == n_edges * (len(PRIMITIVES) - 1)
    assert all(k != PRIMITIVES.index("none") for (_, _, k) in calls)
    for h in hooks:
        h.remove()


def test_gumbel_is_the_sampled_cell_with_straight_through_gradient():
    """Value: the one-hot-weighted supernet (= the sampled op alone); gradient of alpha:
    through hard[e, idx] only (AutoDL's NASNet-space MixedOp.forward_gdas), i.e. the
    softmax-mode gradient w.r.t. the weights, restricted to the sampled entries, pushed
    through d probs[e, idx] / d alpha."""
    torch.manual_seed(2)
    net = DartsSupernet(**TINY).double()
    x, _ = _batch()
    x = x.double()
    tau = 5.0
    gen = torch.Generator().manual_seed(7)
    out = net(x, mode="gumbel", tau=tau, generator=gen)
    out.sum().backward()
    g_alpha = {k: getattr(net, f"alphas_{k}").grad.clone() for k in ("normal", "reduce")}
    sample = net.last_sample

    # the same noise again (drawn as gumbel_hard draws it): the soft sample
    gen = torch.Generator().manual_seed(7)
    gumbels, onehots = {}, {}
    for kind in ("normal", "reduce"):
        alpha = getattr(net, f"alphas_{kind}")
        gumbels[kind] = -torch.empty_like(alpha).exponential_(generator=gen).log()
        p = torch.softmax((torch.log_softmax(alpha.detach(), -1) + gumbels[kind]) / tau, -1)
        assert p.argmax(-1).tolist() == sample[kind]
        onehots[kind] = torch.zeros_like(p).scatter_(1, p.argmax(-1, keepdim=True), 1.0)

    # forward with explicit one-hot weights through the softmax path: same logits
    w = {k: v.clone().requires_grad_(True) for k, v in onehots.items()}
    net.zero_grad(set_to_none=True)
    rows = {k: [r.unbind(0) for r in v.unbind(0)] for k, v in w.items()}
    s0 = s1 = net.stem(x)
    for cell in net.cells:
        kind = "reduce" if cell.reduction else "normal"
        s0, s1 = s1, cell(s0, s1, lambda e, mixed, h, r=rows[kind]: mixed(h, r[e]))
    ref = net._head(s1)
    assert torch.allclose(ref, out, atol=1e-10)
    ref.sum().backward()
    for kind in ("normal", "reduce"):
        # dL/dhard[e, idx] only, then hard[e, idx] = probs[e, idx] + const
        g_w = torch.zeros_like(w[kind].grad).scatter_(
            1, torch.tensor(sample[kind]).unsqueeze(1),
            w[kind].grad.gather(1, torch.tensor(sample[kind]).unsqueeze(1)))
        alpha = getattr(net, f"alphas_{kind}").detach().clone().requires_grad_(True)
        u_probs = torch.softmax((torch.log_softmax(alpha, -1) + gumbels[kind]) / tau, -1)
        (u_probs * g_w).sum().backward()
        assert torch.allclose(alpha.grad, g_alpha[kind], atol=1e-10), kind


def test_fixed_mode_is_the_genotype_through_shared_weights():
    torch.manual_seed(3)
    net = DartsSupernet(**TINY).double()
    x, _ = _batch()
    x = x.double()
    g = net.derive()
    # one-hot weights on exactly the genotype's (op, edge) pairs == the fixed cells
    # (distinct predecessors: one pair per edge)
    w = {}
    for kind, pairs in (("normal", g.normal), ("reduce", g.reduce)):
        m = torch.zeros(14, 8, dtype=torch.float64)
        for i in range(4):
            for op, j in pairs[2 * i:2 * i + 2]:
                m[i * (i + 3) // 2 + j, PRIMITIVES.index(op)] = 1.0
        w[kind] = [r.unbind(0) for r in m.unbind(0)]
    s0 = s1 = net.stem(x)
    for cell in net.cells:
        kind = "reduce" if cell.reduction else "normal"
        s0, s1 = s1, cell(s0, s1, lambda e, mixed, h, r=w[kind]: mixed(h, r[e]))
    assert torch.allclose(net(x, mode="fixed", arch=SPACE.format(g)), net._head(s1), atol=1e-10)
    with pytest.raises(ValueError):
        net(x, mode="argmax")
    with pytest.raises(ValueError):
        net(x, mode="gumbel")


# --------------------------------------------------------------------------- derivation
def _set_alphas(net, normal, reduce=None):
    with torch.no_grad():
        net.alphas_normal.copy_(normal)
        if reduce is not None:
            net.alphas_reduce.copy_(reduce)


def test_derive_darts_rule_on_hand_set_alphas():
    net = DartsSupernet(**TINY)
    N = PRIMITIVES.index
    a = torch.zeros(14, 8)
    # node 2 (edges 0: 0->2, 1: 1->2): edge 0's top op is none, its best real op is avg pool;
    # the large none weight squeezes its softmax, so edge 0 ranks second (DARTS's quirk)
    a[0, N("none")] = 9.0
    a[0, N("avg_pool_3x3")] = 2.0
    a[1, N("sep_conv_3x3")] = 1.0
    # node 3 (edges 2..4 from 0, 1, 2): edge 4 strongest, then edge 2
    a[4, N("dil_conv_5x5")] = 3.0
    a[2, N("skip_connect")] = 2.5
    a[3, N("sep_conv_5x5")] = 2.0
    # node 4 (edges 5..8 from 0..3): an edge whose only large value is none is not picked
    a[8, N("none")] = 20.0
    a[6, N("max_pool_3x3")] = 1.0
    a[7, N("dil_conv_3x3")] = 1.5
    # node 5 (edges 9..13 from 0..4): all equal -> the lower edges, the first real op
    r = torch.zeros(14, 8)
    r[0, N("max_pool_3x3")] = 1.0
    _set_alphas(net, a, r)
    g = net.derive()
    w = torch.softmax(a, -1)
    # hand check of the ranking key on node 2: edge 0's strongest non-none weight
    assert w[0, N("avg_pool_3x3")] < w[1, N("sep_conv_3x3")] < w[0, N("none")]
    assert g.normal == [("sep_conv_3x3", 1), ("avg_pool_3x3", 0),
                        ("dil_conv_5x5", 2), ("skip_connect", 0),
                        ("dil_conv_3x3", 2), ("max_pool_3x3", 1),
                        ("max_pool_3x3", 0), ("max_pool_3x3", 1)]
    assert g.normal_concat == [2, 3, 4, 5] and g.reduce_concat == [2, 3, 4, 5]
    assert g.reduce[:2] == [("max_pool_3x3", 0), ("max_pool_3x3", 1)]
    # each node's two inputs are distinct predecessors (one edge per predecessor)
    for pairs in (g.normal, g.reduce):
        assert all(pairs[2 * i][1] != pairs[2 * i + 1][1] for i in range(4))
    # the derived genotype is a genotype of the space, and builds DARTS's NetworkCIFAR
    assert SPACE.parse(SPACE.format(g)) == g
    model = SPACE.build_network(g, "cifar10", C=8, layers=3)
    model.eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_derive_gdas_rule_may_take_two_ops_of_one_predecessor():
    net = DartsSupernet(**TINY)
    N = PRIMITIVES.index
    a = torch.zeros(14, 8)
    a[0, N("sep_conv_3x3")] = 3.0
    a[0, N("skip_connect")] = 2.9
    a[1, N("sep_conv_5x5")] = 1.0
    _set_alphas(net, a, a)
    assert net.derive("gdas").normal[:2] == [("sep_conv_3x3", 0), ("skip_connect", 0)]
    assert net.derive("darts").normal[:2] == [("sep_conv_3x3", 0), ("sep_conv_5x5", 1)]
    g = net.derive("gdas")
    assert SPACE.parse(SPACE.format(g)) == g
    with pytest.raises(ValueError):
        net.derive("enas")


def test_edge_weights():
    torch.manual_seed(0)
    net = DartsSupernet(**TINY)
    ew = net.edge_weights()
    assert set(ew) == {"normal", "reduce"}
    assert torch.allclose(ew["normal"], torch.softmax(net.alphas_normal, -1))
    assert not ew["reduce"].requires_grad and torch.allclose(ew["reduce"].sum(-1), torch.ones(14))
    assert len(net.edges) == 14 and net.edges[:3] == [(0, 2), (1, 2), (0, 3)]


# --------------------------------------------------------------------------- GDAS-FRC
def test_frc_variant():
    torch.manual_seed(0)
    net = SPACE.supernet(C=4, layers=3, frc=True)
    assert [type(c) for c in net.cells] == [SearchCell, FixedReductionCell, FixedReductionCell]
    assert [n for n, _ in net.named_parameters() if n.startswith("alpha")] == ["alphas_normal"]
    assert net.arch_parameters() == [net.alphas_normal]
    assert set(net.edge_weights()) == {"normal"}
    # the fixed cell: per conv branch 2 grouped (8) convs C*(C/8)*3 and a 1x1 C*C, BN no affine
    cell = net.cells[1]
    C = 8
    branch = sum(p.numel() for p in cell.ops1.parameters())
    assert branch == 2 * (2 * C * (C // 8) * 3 + C * C)
    assert sum(p.numel() for p in cell.ops2.parameters()) == 0
    x, y = _batch()
    for mode in ("softmax", "gumbel"):
        logits = net(x, mode=mode, tau=1.0)
        grads = _grads(net, F.cross_entropy(logits, y))
        assert grads["alphas_normal"].abs().sum() > 0
        assert grads["cells.1.ops1.0.1.weight"].abs().sum() > 0
    assert set(net.last_sample) == {"normal"}
    g = net.derive()
    assert g.reduce == list(FRC_REDUCE) and g.reduce_concat == [2, 3, 4, 5]
    assert SPACE.parse(SPACE.format(g)) == g
    assert net(x, mode="fixed", arch=g).shape == (2, 10)
    assert SPACE.build_network(g, C=8, layers=3)(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_gdas_head_and_layout():
    """GDAS's NASNet-space supernet: N=2 -> layers=6 (reductions at cells 2 and 4), BN-ReLU
    before the pooling. AutoDL-Projects' NASNetworkGDAS(C=16, N=2) counts 1,343,034 and
    NASNetworkGDAS_FRC 744,570, of which 20,032 / 11,776 are the conv biases AutoDL adds when
    BN is not affine (DARTS's and GDAS's own cells have none): the rest is ours exactly."""
    full = SPACE.supernet(layers=6, lastact=True)
    assert sum(p.numel() for p in full.weight_parameters()) == 1343034 - 20032
    frc = SPACE.supernet(layers=6, lastact=True, frc=True)
    assert sum(p.numel() for p in frc.weight_parameters()) == 744570 - 11776
    net = SPACE.supernet(C=4, layers=6, lastact=True)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == [2, 4]
    assert net.lastact is not None and net.lastact[0].affine
    x, _ = _batch()
    assert net(x, mode="gumbel", tau=10).shape == (2, 10)


def test_mixed_op_shares_relu_without_changing_values():
    torch.manual_seed(0)
    op = MixedOp(4, 1).double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    w = torch.softmax(torch.randn(8, dtype=torch.float64), 0)
    ref = sum(wk * o(x) for wk, o in zip(w, op._ops))
    assert torch.allclose(op(x, w.unbind(0)), ref, atol=1e-12)


# --------------------------------------------------------------------------- GDAS's ops, BN
def test_gdas_pooling_ops_have_no_bn_and_darts_keep_theirs():
    """DARTS's MixedOp puts a BN (no affine) after each pool; AutoDL's GDAS pools (C_in ==
    C_out) have none, so a sampled pool's output is the pool's own (GDAS's hard weight 1)."""
    torch.manual_seed(0)
    pools = [PRIMITIVES.index("max_pool_3x3"), PRIMITIVES.index("avg_pool_3x3")]
    darts, gdas = MixedOp(4, 1), MixedOp(4, 1, pool_bn=False)
    for k in pools:
        assert isinstance(darts._ops[k], torch.nn.Sequential)
        assert isinstance(darts._ops[k][1], torch.nn.BatchNorm2d)
        assert isinstance(gdas._ops[k], (torch.nn.MaxPool2d, torch.nn.AvgPool2d))
    # everything else is the same module tree
    assert [type(o) for k, o in enumerate(darts._ops) if k not in pools] == \
        [type(o) for k, o in enumerate(gdas._ops) if k not in pools]
    net = DartsSupernet(**TINY, pool_bn=False).double()
    pool_bn = re.compile(r"^cells\.\d+\._ops\.\d+\._ops\.[12]\.1\.running_mean$")
    assert not any(pool_bn.match(n) for n in net.state_dict())
    assert sum(bool(pool_bn.match(n)) for n in DartsSupernet(**TINY).state_dict()) == 3 * 14 * 2
    # a hard sample of only max-pools: every edge of every cell is max_pool(h) exactly
    x, _ = _batch()
    x = x.double()
    with torch.no_grad():
        net.alphas_normal.fill_(-1e3)
        net.alphas_reduce.fill_(-1e3)
        net.alphas_normal[:, pools[0]] = 0.0
        net.alphas_reduce[:, pools[0]] = 0.0
    out = net(x, mode="gumbel", tau=1.0)
    assert all(set(s) == {pools[0]} for s in net.last_sample.values())
    s0 = s1 = net.stem(x)
    for cell in net.cells:
        states = [cell.preprocess0(s0), cell.preprocess1(s1)]
        for i in range(4):
            states.append(sum(torch.nn.functional.max_pool2d(states[j], 3, 2 if cell.reduction
                                                             and j < 2 else 1, 1)
                              for j in range(i + 2)))
        s0, s1 = s1, torch.cat(states[2:], 1)
    assert torch.allclose(out, net._head(s1), atol=1e-10)
    assert SPACE.supernet(C=4, layers=3, pool_bn=False).pool_bn is False


@pytest.mark.parametrize("frc", [False, True])
def test_track_running_stats_off_drops_the_cells_running_statistics(frc):
    """AutoDL's ``track_running_stats`` on the NASNet space: every BN of the cells (search
    cells, preprocessing, GDAS-FRC's fixed reduction cell) keeps no running statistics; the
    stem's and the head's BN keep theirs."""
    torch.manual_seed(0)
    net = SPACE.supernet(C=8, layers=3, lastact=True, frc=frc, track_running_stats=False)
    cell_bns = [m for m in net.cells.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert cell_bns and all(not m.track_running_stats and m.running_mean is None
                            for m in cell_bns)
    assert not any(n.startswith("cells.") and "running" in n for n in net.state_dict())
    assert net.stem[1].track_running_stats and net.lastact[0].track_running_stats
    # as BatchNorm2d(track_running_stats=False) built so: batch statistics in eval mode too
    bn, ref = cell_bns[0], torch.nn.BatchNorm2d(cell_bns[0].num_features, affine=False,
                                                track_running_stats=False)
    x = torch.randn(2, bn.num_features, 4, 4)
    bn.eval()
    assert torch.allclose(bn(x), ref.eval()(x)) and not torch.allclose(bn(x), x)
    on = SPACE.supernet(C=8, layers=3, frc=frc)
    assert all(m.track_running_stats for m in on.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert len(on.state_dict()) > len(net.state_dict())
    x, y = _batch()
    net.train()
    assert net(x, mode="gumbel", tau=1.0).shape == (2, 10)
