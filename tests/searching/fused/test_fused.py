"""Fused candidates (searching/fused/cnn_model.py): each member trains exactly as its own network would.

float64 on CPU, tiny graphs: k=3 candidates of one parent (the parent minus one edge each).
Each member's loss, gradients, weights and BN statistics are compared with its separate network
(same seed, same initialisation, same batches) over several optimizer steps, with one member
early-stopped midway: it must stay unchanged (weights, BN statistics, optimizer state) while the
others keep matching their separate trainings.
"""
import pytest
import torch
import torch.nn.functional as F

from searching.fused.cnn_model import FusedCandidates, MemberFreezer, unsupported
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.network import NetworkSpec
from searching.cnn.proxy import _param_groups

# float64 equivalence runs of the fused trainers: part of the full suite, not the inner loop
pytestmark = pytest.mark.slow

RTOL, ATOL = 1e-9, 1e-11


def _spec(**kw):
    base = dict(scale=[1.0, 2.0], pool=[1, 2], replicate=[1, 1], base_channels=4,
                stem_channels=8, num_classes=5, image_size=8)
    base.update(kw)
    return NetworkSpec(**base)


def _members(parent, edges):
    return [parent.remove_edge(i, j) for i, j in edges]


def _close(a, b, what):
    assert torch.allclose(a, b, rtol=RTOL, atol=ATOL), (what, (a - b).abs().max().item())


PARENT4 = CellGraph.complete(4, ["input", "SepConv3x3", "Conv1x1", "Conv3x3"])
# (0,1) keeps node 1 alive through nothing else -> node 1 pruned; (2,3) makes node 2 a leaf
# (two leaves: another output width and residual); (1,3) a plain removed edge
EDGES4 = [(0, 1), (2, 3), (1, 3)]


PARENT5 = CellGraph.complete(5, ["input", "SepConv5x5", "Conv3x3", "SepConv3x3", "Conv1x1"])
EDGES5 = [(3, 4), (0, 2), (1, 3), (2, 4)]


def _no_leak(fused):
    """Gradients outside every member's own slots are exactly zero."""
    for name, p in fused.named_parameters():
        g = p.grad.clone().view(-1)
        for links in fused._links:
            for fkey, _, idx in links:
                if fkey == name:
                    g[idx.reshape(-1)] = 0
        assert not g.any(), f"gradient leaks into unused slots of {name}"


def _train(optim, per_member_data, steps=6, stop_member=1, stop_after=3, parent=PARENT4,
           edges=EDGES4, **spec_kw):
    torch.set_default_dtype(torch.float64)
    try:
        spec = _spec(**spec_kw)
        graphs = _members(parent, edges)
        seeds = [11, 22, 33, 44][:len(graphs)]
        fused, nets = FusedCandidates.from_members(parent, graphs, spec, seeds)
        M = len(graphs)
        make = (lambda groups: torch.optim.Adam(groups, lr=4e-3)) if optim == "adam" else \
            (lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9))
        fopt = make(fused.param_groups(1e-5))
        nopts = [make(_param_groups(n, 1e-5)) for n in nets]
        freezer = MemberFreezer(fused, fopt)
        gen = torch.Generator().manual_seed(0)
        frozen_state = None
        for step in range(steps):
            shape = (M, 4, 3, 8, 8) if per_member_data else (4, 3, 8, 8)
            x = torch.randn(*shape, generator=gen)
            y = torch.randint(0, 5, shape[:-3], generator=gen)
            if step == stop_after:
                freezer.freeze(stop_member)
                frozen_state = {k: v.clone() for k, v in fused.member_tensors(stop_member).items()}
            active = freezer.active
            logits = fused(x)
            loss = fused.loss(logits, y, active)
            fopt.zero_grad()
            loss.backward()
            _no_leak(fused)
            for m in active:
                xm, ym = (x[m], y[m]) if per_member_data else (x, y)
                out = nets[m](xm)
                lm = F.cross_entropy(out, ym)
                _close(F.cross_entropy(logits[m], ym), lm, f"loss m{m} step{step}")
                nopts[m].zero_grad()
                lm.backward()
                grads = fused.member_tensors(m, grads=True)
                for name, p in nets[m].named_parameters():
                    _close(grads[name], p.grad, f"grad {name} m{m} step{step}")
                nopts[m].step()
            fopt.step()
            freezer.restore()
            for m in active:
                mine = fused.member_tensors(m)
                for name, t in nets[m].state_dict().items():
                    if name in mine:
                        _close(mine[name], t, f"{name} m{m} after step{step}")
            if frozen_state is not None:
                now = fused.member_tensors(stop_member)
                for name, t in frozen_state.items():
                    assert torch.equal(now[name], t), f"frozen member changed: {name}"
        # eval mode (running statistics) agrees too
        fused.eval()
        x = torch.randn(4, 3, 8, 8, generator=gen)
        logits = fused(x)
        for m in freezer.active:
            nets[m].eval()
            _close(logits[m], nets[m](x), f"eval logits m{m}")
        return fused, nets
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("optim", ["adam", "sgd"])
def test_members_match_separate_training_with_early_stop(optim):
    _train(optim, per_member_data=True)


def test_members_share_batches():
    _train("adam", per_member_data=False, steps=4, stop_after=2, stop_member=0)


def test_five_nodes_swish_sep5_pooled_first_stage():
    _train("adam", per_member_data=True, steps=4, stop_after=2, stop_member=3, parent=PARENT5,
           edges=EDGES5, activation="swish", pool=[2, 2], replicate=[2, 1])


def test_frozen_member_keeps_optimizer_state():
    torch.set_default_dtype(torch.float64)
    try:
        graphs = _members(PARENT4, EDGES4)
        fused, _ = FusedCandidates.from_members(PARENT4, graphs, _spec(), [1, 2, 3])
        opt = torch.optim.Adam(fused.param_groups(0.0), lr=1e-2)
        fz = MemberFreezer(fused, opt)
        x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
        for step in range(3):
            if step == 1:
                fz.freeze(2)
                before = [opt.state[p]["exp_avg"].view(3, -1)[2].clone()
                          for p in fused.parameters()]
            opt.zero_grad()
            fused.loss(fused(x), y, fz.active).backward()
            opt.step()
            fz.restore()
        after = [opt.state[p]["exp_avg"].view(3, -1)[2] for p in fused.parameters()]
        assert all(torch.equal(a, b) for a, b in zip(before, after))
    finally:
        torch.set_default_dtype(torch.float32)


def test_unsupported_cases_are_named():
    spec = _spec()
    mb = CellGraph.complete(3, ["input", "MBConv3x3_e3", "Conv1x1"])
    assert "MBConv3x3_e3" in unsupported(mb, [mb.remove_edge(0, 1)], spec)
    assert unsupported(PARENT4, _members(PARENT4, EDGES4), _spec(width=2)) == "width > 1"
    with pytest.raises(NotImplementedError):
        FusedCandidates(mb, [mb.remove_edge(1, 2)], spec)
