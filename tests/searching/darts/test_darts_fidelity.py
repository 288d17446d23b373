"""DARTS's per-space official behaviours and the flags that change them: when each epoch's
genotype is derived (quark0 logs it before the epoch's training, AutoDL after), and
``--unroll_nesterov`` (V2's virtual step as Nesterov SGD's own next step, where AutoDL unrolls
with the heavy-ball formula although it trains with Nesterov)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from api.spaces import get_space
from api.spaces.darts.genotype import canonical
from api.spaces.darts.supernet import _top2_edges
from searching.darts import train_search as darts_cli
from searching.darts.architect import Architect
from searching.darts.method import DARTS, NesterovUnroll, _loss_and_logits
from searching.oneshot.trainer import OneShotConfig
from tests.conftest import oneshot_history, run_cli_inprocess
from tests.searching.oneshot.test_oneshot import tiny

MU, WD, LR = 0.9, 5e-4, 0.1


def darts_rule(edge_weights):
    """DARTS's genotype of a history record's softmax(alpha) (4 nodes, concat 2..5)."""
    return canonical(_top2_edges(edge_weights["normal"], 4), [2, 3, 4, 5],
                     _top2_edges(edge_weights["reduce"], 4), [2, 3, 4, 5])


# --------------------------------------------------------------------------- derive_at
def test_derive_at_epoch_start_reports_the_genotype_before_the_epochs_training(one_thread):
    torch.manual_seed(0)
    net = get_space("nas-bench-201").supernet("cifar10", C=4, N=1, affine=False)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=LR, momentum=MU)
    method = DARTS(arch_lr=0.5, derive_at="epoch_start")
    method.bind(net, w_opt, OneShotConfig(space="nas-bench-201"))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)
    method.epoch_start(0)
    before = net.derive()
    for step in range(3):
        method.step(net, (x, y), (x.flip(0), y.flip(0)), 0, step)
    assert net.derive() != before  # the alphas moved enough to change the cell
    assert method.derive(net) == before
    # a mid-epoch checkpoint keeps it
    again = DARTS(arch_lr=0.5, derive_at="epoch_start")
    again.bind(net, w_opt, OneShotConfig(space="nas-bench-201"))
    again.load_state_dict(method.state_dict())
    assert again.derive(net) == before
    end = DARTS(derive_at="epoch_end")
    end.bind(net, w_opt, OneShotConfig(space="nas-bench-201"))
    end.epoch_start(1)
    assert end.derive(net) == net.derive()
    with pytest.raises(ValueError):
        DARTS(derive_at="middle")


@pytest.mark.slow
@pytest.mark.parametrize("derive_at", [None, "epoch_end"])
def test_darts_space_history_genotypes(derive_at, cifar_root, tmp_path, capsys, one_thread):
    """darts space, default (quark0): epoch e's genotype is the rule on the alphas before its
    training, i.e. on epoch e-1's final softmax(alpha); ``--derive_at epoch_end``: on its own."""
    save = tmp_path / "run"
    args = tiny(cifar_root, save, "--no_plots", "--arch_learning_rate", 0.3,
                *(["--derive_at", derive_at] if derive_at else []))
    for flag, value in (("--space", "darts"), ("--layers", 3), ("--train_size", 32)):
        args[args.index(flag) + 1] = value
    code, _, err = run_cli_inprocess(darts_cli.main, args, capsys)
    assert code == 0, err
    rows = oneshot_history(save)
    space = get_space("darts")
    if derive_at is None:
        assert space.parse(rows[1]["arch"]) == darts_rule(rows[0]["edge_weights"])
    else:
        assert all(space.parse(r["arch"]) == darts_rule(r["edge_weights"]) for r in rows)
    assert (save / "arch-best.txt").read_text().strip() == rows[-1]["arch"]
    assert darts_rule(rows[0]["edge_weights"]) != darts_rule(rows[1]["edge_weights"])


# --------------------------------------------------------------------------- Nesterov unroll
def nb201(seed=0):
    torch.manual_seed(seed)
    net = get_space("nas-bench-201").supernet("cifar10", C=4, N=1, affine=False).double()
    with torch.no_grad():
        net.alpha_cell.normal_()
    return net


def batches(seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64),
             torch.randint(0, 10, (4,), generator=g)) for _ in range(3)]


def nesterov_opt(net, warm=None):
    opt = torch.optim.SGD(net.weight_parameters(), lr=LR, momentum=MU, weight_decay=WD,
                          nesterov=True)
    if warm is not None:  # one real step, so that momentum buffers exist
        opt.zero_grad()
        F.cross_entropy(net(warm[0], mode="softmax"), warm[1]).backward()
        opt.step()
    return opt


@pytest.mark.parametrize("with_buffers", [False, True])
def test_nesterov_virtual_step_is_the_optimizers_own_next_step(with_buffers, one_thread):
    early, train, _ = batches()
    net = nb201()
    opt = nesterov_opt(net, early if with_buffers else None)
    arch = NesterovUnroll(net, _loss_and_logits, momentum=MU)
    virtual = arch.virtual_step(train, LR * (1 + MU), opt)
    # DARTS's heavy-ball formula is another point (first step: w - lr (g + wd w))
    heavy = Architect(net, _loss_and_logits).virtual_step(train, LR, opt)
    gap = max((h - v).abs().max() for h, v in zip(heavy, virtual))
    assert gap > 1e-4
    # torch's own Nesterov step from the same state
    opt.zero_grad()
    loss = F.cross_entropy(net(train[0], mode="softmax"), train[1])
    loss.backward(inputs=list(net.weight_parameters()))
    opt.step()
    for v, p in zip(virtual, net.weight_parameters()):
        assert torch.allclose(v, p, rtol=0, atol=1e-13)


def test_nesterov_unroll_gradient_is_the_exact_hypergradient_of_the_nesterov_step(one_thread):
    """dalpha of ``--unroll_nesterov`` = d/dalpha L_val(w'(alpha), alpha) with w' Nesterov's
    next step (computed exactly by double backward), up to the central difference's error
    (r = 1e-5 instead of DARTS's 1e-2, whose difference crosses ReLU kinks at these sizes);
    the heavy-ball dalpha is clearly farther."""
    early, train, val = batches(2)
    net = nb201(3)
    opt = nesterov_opt(net, early)
    weights = list(net.weight_parameters())
    names = [n for n, p in net.named_parameters() if not n.startswith("alpha")]
    alpha = net.alpha_cell
    loss = F.cross_entropy(net(train[0], mode="softmax"), train[1])
    g = torch.autograd.grad(loss, weights, create_graph=True)
    new = {}
    for name, p, gi in zip(names, weights, g):
        b = opt.state[p]["momentum_buffer"]
        new[name] = p - LR * ((1 + MU) * (gi + WD * p) + MU * MU * b)
    new["alpha_cell"] = alpha
    out = functional_call(net, new, (val[0],), {"mode": "softmax"})
    exact = torch.autograd.grad(F.cross_entropy(out, val[1]), alpha)[0]
    net.zero_grad(set_to_none=True)

    got = {}
    for name, arch_cls, xi in (("nesterov", NesterovUnroll, LR * (1 + MU)),
                               ("heavy", Architect, LR)):
        state = {k: v.clone() for k, v in net.state_dict().items()}
        kw = {"momentum": MU} if arch_cls is NesterovUnroll else {}
        arch = arch_cls(net, _loss_and_logits, r=1e-5, **kw)
        arch.step(train, val, xi, opt, unrolled=True)
        got[name] = alpha.grad.clone()
        net.load_state_dict(state)
    err = (got["nesterov"] - exact).abs().max()
    assert err < 1e-7 * exact.abs().max()
    assert (got["heavy"] - exact).abs().max() > 100 * err


def test_method_passes_xi_times_one_plus_mu(one_thread):
    net = nb201()
    opt = nesterov_opt(net)
    method = DARTS(unrolled=True, unroll_nesterov=True)
    method.bind(net, opt, OneShotConfig(space="nas-bench-201", nesterov=True))
    assert isinstance(method.architect, NesterovUnroll) and method.xi_scale == 1 + MU
    assert method.settings()["unroll_nesterov"] is True
    assert "unroll_nesterov" not in DARTS(unrolled=True).settings()
    with pytest.raises(ValueError, match="Nesterov"):
        DARTS(unrolled=False, unroll_nesterov=True).bind(net, opt, OneShotConfig(
            space="nas-bench-201"))


@pytest.mark.parametrize("extra", [["--space", "darts", "--unrolled"], []])
def test_unroll_nesterov_refused_where_it_changes_nothing(extra, cifar_root, tmp_path, capsys):
    args = tiny(cifar_root, tmp_path / "run", "--unroll_nesterov")
    if extra[:2] == ["--space", "darts"]:
        args[args.index("--space") + 1] = "darts"
        args.append("--unrolled")
    code, out, err = run_cli_inprocess(darts_cli.main, args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--unroll_nesterov" in lines[0]
    assert not (tmp_path / "run").exists()
