"""AutoDL-Projects' own code (the pip package ``xautodl``) as the oracle of DARTS and GDAS:
its search models and ours are built with the same weights (state copied), alphas, data and
Gumbel noise, in float64 at tiny sizes, and must agree to 1e-10.

- NAS-Bench-201, DARTS (softmax): logits and every gradient against ``TinyNetworkDarts``.
- NAS-Bench-201, GDAS: the same against ``TinyNetworkGDAS``; AutoDL draws its noise from the
  global RNG, ours from a generator seeded alike.
- NAS-Bench-201, three DARTS-V1 steps against AutoDL's DARTS-V1 step (weights first), written
  out from ``exps/NAS-Bench-201-algos/DARTS-V1.py`` ``search_func``.
- NAS-Bench-201, one DARTS-V2 step, two steps in a row (the second with momentum buffers):
  AutoDL's step lives in ``exps/NAS-Bench-201-algos/DARTS-V2.py``, outside the wheel; the
  reference below re-derives its maths (``backward_step_unrolled``, ``_hessian_vector_product``,
  then ``search_func``'s Adam step and weight step with ``clip_grad_norm_`` over
  ``network.parameters()``) on ``TinyNetworkDarts``.
- The DARTS/NASNet space: GDAS's gumbel forward (logits, gradients) against ``NASNetworkGDAS``
  (its conv biases set to 0; the same noise fed to both in each side's op order); GDAS's
  derivation against ``NASNetworkGDAS.genotype()``, on hand-set
  alphas and on the alphas a ``searching/gdas/search.py --space darts`` run ends with.
- Pooling ops against ``cell_operations.POOLING``.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

xautodl = pytest.importorskip("xautodl", reason="AutoDL-Projects' xautodl package is not "
                                                "installed (pip install xautodl --no-deps)")
from xautodl.models.cell_operations import (DARTS_SPACE, NAS_BENCH_201,  # noqa: E402
                                            POOLING)
from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts  # noqa: E402
from xautodl.models.cell_searchs.search_model_gdas import TinyNetworkGDAS  # noqa: E402
from xautodl.models.cell_searchs.search_model_gdas_nasnet import NASNetworkGDAS  # noqa: E402

from api.spaces.darts.genotype import PRIMITIVES, canonical  # noqa: E402
from api.spaces.darts.supernet import DartsSupernet, MixedOp  # noqa: E402
from api.spaces.nasbench201.network import ReLUConvBN  # noqa: E402
from api.spaces.nasbench201.supernet import NASBench201Supernet  # noqa: E402
from searching.darts.method import DARTS  # noqa: E402
from searching.oneshot.trainer import OneShotConfig  # noqa: E402

TOL = 1e-10
#: AutoDL's DARTS-space op names -> DARTS's.
AUTODL_NAMES = {"none": "none", "skip_connect": "skip_connect", "dua_sepc_3x3": "sep_conv_3x3",
                "dua_sepc_5x5": "sep_conv_5x5", "dil_sepc_3x3": "dil_conv_3x3",
                "dil_sepc_5x5": "dil_conv_5x5", "avg_pool_3x3": "avg_pool_3x3",
                "max_pool_3x3": "max_pool_3x3"}
#: Column k of our (edges, 8) alphas is column TO_AUTODL[k] of AutoDL's.
TO_AUTODL = [[AUTODL_NAMES[n] for n in DARTS_SPACE].index(op) for op in PRIMITIVES]


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- NAS-Bench-201
def nb201_pair(kind: str, seed: int = 0, C: int = 4, N: int = 1):
    """(ours, AutoDL's) NB201 search models in float64 with AutoDL's state copied into ours
    (the two register parameters and buffers in the same order: checked by shape)."""
    torch.manual_seed(seed)
    cls = TinyNetworkDarts if kind == "darts" else TinyNetworkGDAS
    theirs = cls(C, N, 4, 10, NAS_BENCH_201, False, True).double()
    ours = NASBench201Supernet(10, C=C, N=N, affine=False, track_running_stats=True).double()
    src, dst = theirs.state_dict(), ours.state_dict()
    assert len(src) == len(dst)
    with torch.no_grad():
        for (_, a), (name, b) in zip(src.items(), dst.items()):
            assert a.shape == b.shape, name
        ours.load_state_dict({name: a.clone() for (_, a), name in zip(src.items(), dst)})
        # alphas away from their 1e-3 start, so every op matters
        alpha = torch.randn(6, 5, dtype=torch.float64)
        theirs.arch_parameters.copy_(alpha)
        ours.alpha_cell.copy_(alpha)
    return ours, theirs


def batch(n: int = 4, seed: int = 1, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, size, size, generator=g, dtype=torch.float64),
            torch.randint(0, 10, (n,), generator=g))


def grads(params):
    return [torch.zeros_like(p) if p.grad is None else p.grad for p in params]


def assert_same_params_and_grads(ours, theirs):
    a, b = list(ours.parameters()), list(theirs.parameters())
    assert len(a) == len(b)
    for k, (p, q) in enumerate(zip(a, b)):
        assert torch.allclose(p, q, rtol=0, atol=TOL), k
    for k, (g, h) in enumerate(zip(grads(a), grads(b))):
        assert torch.allclose(g, h, rtol=0, atol=TOL), k


def test_nb201_darts_softmax_logits_and_gradients_equal_tiny_network_darts():
    ours, theirs = nb201_pair("darts")
    x, y = batch()
    logits = ours(x, mode="softmax")
    _, ref = theirs(x)
    assert torch.allclose(logits, ref, rtol=0, atol=TOL)
    F.cross_entropy(logits, y).backward()
    F.cross_entropy(ref, y).backward()
    assert ours.alpha_cell.grad.abs().sum() > 0
    assert_same_params_and_grads(ours, theirs)
    # the running statistics the forward moved too
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), rtol=0, atol=TOL), name


@pytest.mark.parametrize("tau", [10.0, 0.5])
def test_nb201_gdas_logits_and_gradients_equal_tiny_network_gdas(tau):
    ours, theirs = nb201_pair("gdas", seed=2)
    theirs.set_tau(tau)
    x, y = batch(seed=3)
    for draw in range(3):  # three samples (AutoDL's global RNG, our generator, same seed)
        ours.zero_grad(set_to_none=True)
        theirs.zero_grad(set_to_none=True)
        logits = ours(x, mode="gumbel", tau=tau,
                      generator=torch.Generator().manual_seed(100 + draw))
        torch.manual_seed(100 + draw)
        _, ref = theirs(x)
        assert torch.allclose(logits, ref, rtol=0, atol=TOL)
        F.cross_entropy(logits, y).backward()
        F.cross_entropy(ref, y).backward()
        assert ours.alpha_cell.grad.abs().sum() > 0
        assert_same_params_and_grads(ours, theirs)


def autodl_darts_v2_step(net, w_opt, a_opt, base, arch, grad_clip):
    """One step of AutoDL's NB201 DARTS-V2 (``exps/NAS-Bench-201-algos/DARTS-V2.py``,
    ``search_func``), its maths written out here on AutoDL's ``TinyNetworkDarts``: the
    architecture step (``backward_step_unrolled``: a heavy-ball virtual step on a deep copy,
    the validation gradient there, the central difference of ``_hessian_vector_product``
    with r = 0.01, dalpha minus lr times it, Adam), then the weight step (cross-entropy,
    ``clip_grad_norm_`` over ``network.parameters()``, alphas included, SGD)."""
    weights, alphas = net.get_weights(), net.get_alphas()
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731
    a_opt.zero_grad()
    # the virtual step
    _, logits = net(base[0])
    loss = F.cross_entropy(logits, base[1])
    group = w_opt.param_groups[0]
    lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
    with torch.no_grad():
        theta = flat(weights)
        bufs = [w_opt.state[p].get("momentum_buffer") for p in weights]
        moment = (flat(bufs) * mom if all(b is not None for b in bufs)
                  else torch.zeros_like(theta))
        dtheta = flat(torch.autograd.grad(loss, weights)) + wd * theta
        new = theta - lr * (moment + dtheta)
    unrolled = copy.deepcopy(net)
    with torch.no_grad():
        offset = 0
        for p in unrolled.get_weights():
            p.copy_(new[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
    unrolled.zero_grad()
    _, u_logits = unrolled(arch[0])
    F.cross_entropy(u_logits, arch[1]).backward()
    dalpha = unrolled.arch_parameters.grad.clone()
    vector = [p.grad for p in unrolled.get_weights()]
    # the Hessian-vector product by central difference, around w
    r = 1e-2 / flat(vector).norm()
    with torch.no_grad():
        for p, v in zip(weights, vector):
            p.add_(r * v)
    _, lp = net(base[0])
    g_plus = torch.autograd.grad(F.cross_entropy(lp, base[1]), alphas)[0]
    with torch.no_grad():
        for p, v in zip(weights, vector):
            p.sub_(2 * r * v)
    _, ln = net(base[0])
    g_minus = torch.autograd.grad(F.cross_entropy(ln, base[1]), alphas)[0]
    with torch.no_grad():
        for p, v in zip(weights, vector):
            p.add_(r * v)
    dalpha = dalpha - lr * (g_plus - g_minus) / (2 * r)
    net.arch_parameters.grad = dalpha
    a_opt.step()
    # the weight step
    w_opt.zero_grad()
    _, logits = net(base[0])
    F.cross_entropy(logits, base[1]).backward()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    w_opt.step()
    return float(norm)


@pytest.mark.parametrize("clip_alphas", [True, False])
def test_nb201_darts_v2_steps_equal_autodls_step(clip_alphas):
    """Two DARTS-V2 steps (the first without momentum buffers, the second with): the weights
    and alphas after each equal AutoDL's to 1e-10. Ours clips like AutoDL's
    ``network.parameters()`` on NAS-Bench-201; with the alphas left out of the clip
    (``clip_alphas=False``, quark0's scope) the weights come out differently."""
    ours, theirs = nb201_pair("darts", seed=4)
    sgd = dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    t_w = torch.optim.SGD(theirs.get_weights(), **sgd)
    t_a = torch.optim.Adam(theirs.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    o_w = torch.optim.SGD(ours.weight_parameters(), **sgd)
    clip = 0.5  # small enough that the clip acts at every step
    method = DARTS(unrolled=True, clip_alphas=None if clip_alphas else False)
    method.bind(ours, o_w, OneShotConfig(space="nas-bench-201", grad_clip=clip))
    assert method.clip_alphas is clip_alphas
    for step in range(2):
        base, arch = batch(seed=10 + step), batch(seed=20 + step)
        norm = autodl_darts_v2_step(theirs, t_w, t_a, base, arch, clip)
        assert norm > clip
        method.step(ours, base, arch, 0, step)
        same = [torch.allclose(p, q, rtol=0, atol=TOL)
                for p, q in zip(ours.weight_parameters(), theirs.get_weights())]
        assert torch.allclose(ours.alpha_cell, theirs.arch_parameters, rtol=0, atol=TOL)
        if clip_alphas:
            assert all(same), step
        else:
            assert not all(same)
            return


def autodl_darts_v1_step(net, w_opt, a_opt, base, arch, grad_clip):
    """One step of AutoDL's NB201 DARTS-V1 (``exps/NAS-Bench-201-algos/DARTS-V1.py``,
    ``search_func``), written out: the weight step first (the alphas' gradient still holds
    the previous architecture step's when ``clip_grad_norm_`` sees ``network.parameters()``),
    then the architecture step (``a_optimizer.zero_grad()``, the validation loss's backward,
    Adam)."""
    w_opt.zero_grad()
    _, logits = net(base[0])
    F.cross_entropy(logits, base[1]).backward()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    w_opt.step()
    a_opt.zero_grad()
    _, logits = net(arch[0])
    F.cross_entropy(logits, arch[1]).backward()
    a_opt.step()
    return float(norm)


@pytest.mark.parametrize("order", ["weights_first", "arch_first"])
def test_nb201_darts_v1_steps_equal_autodls_step(order):
    """Three DARTS-V1 steps with ``step_order="weights_first"`` (the NB201 default of
    ``train_search.py``) equal AutoDL's to 1e-10, the clip seeing the previous step's alpha
    gradient; quark0's order (architecture first) gives other weights."""
    ours, theirs = nb201_pair("darts", seed=6)
    sgd = dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    t_w = torch.optim.SGD(theirs.get_weights(), **sgd)
    t_a = torch.optim.Adam(theirs.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    o_w = torch.optim.SGD(ours.weight_parameters(), **sgd)
    clip = 0.5
    method = DARTS(unrolled=False, step_order=order)
    method.bind(ours, o_w, OneShotConfig(space="nas-bench-201", grad_clip=clip))
    for step in range(3):
        base, arch = batch(seed=30 + step), batch(seed=40 + step)
        assert autodl_darts_v1_step(theirs, t_w, t_a, base, arch, clip) > clip
        method.step(ours, base, arch, 0, step)
        same = all(torch.allclose(p, q, rtol=0, atol=TOL)
                   for p, q in zip(ours.parameters(), theirs.parameters()))
        assert same == (order == "weights_first"), step
        if not same:
            return


# --------------------------------------------------------------------------- NASNet space
def nasnet_gdas(C: int = 4, N: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    return NASNetworkGDAS(C, N, 4, 4, 3, 10, DARTS_SPACE, False, True)


def autodl_genotype_as_ours(theirs):
    g = theirs.genotype()
    pairs = {cell: [(AUTODL_NAMES[op], j) for node in g[cell] for op, j, _ in node]
             for cell in ("normal", "reduce")}
    return canonical(pairs["normal"], g["normal_concat"], pairs["reduce"], g["reduce_concat"])


def set_autodl_alphas(theirs, normal, reduce):
    """Our (edges, 8) alphas in DARTS's op order into AutoDL's (its own op order)."""
    with torch.no_grad():
        for param, ours in ((theirs.arch_normal_parameters, normal),
                            (theirs.arch_reduce_parameters, reduce)):
            param.zero_()
            param[:, TO_AUTODL] = ours.to(param.dtype)


def test_gdas_nasnet_genotype_equals_nasnetwork_gdas_genotype():
    theirs = nasnet_gdas()
    assert list(theirs.edge2index) == [f"{i}<-{j}" for i in range(4) for j in range(i + 2)]
    ours = DartsSupernet(C=4, layers=3, lastact=True, pool_bn=False)
    g = torch.Generator().manual_seed(5)
    N = PRIMITIVES.index
    cases = [torch.randn(14, 8, generator=g) for _ in range(20)]
    # two ops of one predecessor on top; ties (all-zero node: AutoDL's op order decides)
    crafted = torch.zeros(14, 8)
    crafted[0, N("sep_conv_3x3")], crafted[0, N("skip_connect")] = 3.0, 2.9
    crafted[2, N("max_pool_3x3")] = crafted[3, N("avg_pool_3x3")] = 1.0
    crafted[9, N("none")] = 5.0
    cases.append(crafted)
    two_from_one = 0
    for k, normal in enumerate(cases):
        reduce = cases[(k + 1) % len(cases)]
        with torch.no_grad():
            ours.alphas_normal.copy_(normal)
            ours.alphas_reduce.copy_(reduce)
        set_autodl_alphas(theirs, normal, reduce)
        mine = ours.derive(rule="gdas")
        assert mine == autodl_genotype_as_ours(theirs), k
        two_from_one += sum(mine.normal[2 * i][1] == mine.normal[2 * i + 1][1] for i in range(4))
    assert two_from_one > 0  # the rule DARTS's derivation would not give was exercised
    assert ours.derive(rule="gdas").normal[:2] == [("sep_conv_3x3", 0), ("skip_connect", 0)]
    assert ours.derive(rule="gdas").normal[2:4] == [("max_pool_3x3", 0), ("avg_pool_3x3", 1)]
    assert ours.derive(rule="gdas").normal[4:6] == [("skip_connect", 0), ("sep_conv_3x3", 0)]


def _conv_bn_pairs(ours, theirs):
    """(our module, AutoDL's module) for every conv and BN of the NASNet-space GDAS supernets
    (AutoDL's op order and module names mapped to DARTS's)."""
    from api.spaces.darts.ops import FactorizedReduce as OurFR
    from xautodl.models.cell_operations import FactorizedReduce, ReLUConvBN as TheirRCB

    def pre(a, b):
        if isinstance(b, FactorizedReduce):
            assert isinstance(a, OurFR)
            return [(a.conv_1, b.convs[0]), (a.conv_2, b.convs[1]), (a.bn, b.bn)]
        assert isinstance(b, TheirRCB)
        return [(a.op[1], b.op[1]), (a.op[2], b.op[2])]

    pairs = [(ours.stem[0], theirs.stem[0]), (ours.stem[1], theirs.stem[1]),
             (ours.lastact[0], theirs.lastact[0]), (ours.classifier, theirs.classifier)]
    for mine, cell in zip(ours.cells, theirs.cells):
        pairs += pre(mine.preprocess0, cell.preprocess0) + pre(mine.preprocess1, cell.preprocess1)
        for e, key in enumerate(cell.edge_keys):
            for k, op in enumerate(mine._ops[e]._ops):
                other = cell.edges[key]._ops[TO_AUTODL[k]]
                name = PRIMITIVES[k]
                if name.startswith("sep_conv"):
                    pairs += [(op.op[i], other.op_a.op[i]) for i in (1, 2, 3)]
                    pairs += [(op.op[i + 4], other.op_b.op[i]) for i in (1, 2, 3)]
                elif name.startswith("dil_conv"):
                    pairs += [(op.op[i], other.op[i]) for i in (1, 2, 3)]
                elif name == "skip_connect" and isinstance(other, FactorizedReduce):
                    pairs += pre(op, other)
    return pairs


def test_gdas_nasnet_logits_and_gradients_equal_nasnetwork_gdas(monkeypatch):
    """GDAS's DARTS-space supernet (``pool_bn=False``) against ``NASNetworkGDAS``, weights
    copied, AutoDL's conv biases (added when BN is not affine) set to 0, the same Gumbel noise
    (the draws fed in each side's op order), alphas that sample pooling ops too: logits and
    every gradient to 1e-10. DARTS's pooling BN (``pool_bn=True``) gives other logits."""
    torch.manual_seed(0)
    theirs = nasnet_gdas(C=4, N=1).double()
    ours = DartsSupernet(C=4, layers=3, lastact=True, pool_bn=False).double()
    pairs = _conv_bn_pairs(ours, theirs)
    with torch.no_grad():
        for a, b in pairs:
            for name, t in b.state_dict().items():
                if name == "bias" and isinstance(b, torch.nn.Conv2d):
                    t.zero_()
                else:
                    a.state_dict()[name].copy_(t)
        g = torch.Generator().manual_seed(9)
        normal, reduce = (torch.randn(14, 8, generator=g, dtype=torch.float64) for _ in "nr")
        for alpha in (normal, reduce):  # favour the pools, so that some edges sample them
            alpha[:, [PRIMITIVES.index("max_pool_3x3"), PRIMITIVES.index("avg_pool_3x3")]] += 1.5
        ours.alphas_normal.copy_(normal)
        ours.alphas_reduce.copy_(reduce)
        theirs.arch_normal_parameters.copy_(normal[:, [TO_AUTODL.index(c) for c in range(8)]])
        theirs.arch_reduce_parameters.copy_(reduce[:, [TO_AUTODL.index(c) for c in range(8)]])
    conv_biases = sum(m.bias.numel() for m in theirs.modules()
                      if isinstance(m, torch.nn.Conv2d) and m.bias is not None)
    assert sum(p.numel() for p in ours.parameters()) == \
        sum(p.numel() for p in theirs.parameters()) - conv_biases
    noise = [torch.empty(14, 8, dtype=torch.float64).exponential_(
        generator=torch.Generator().manual_seed(s)) for s in (1, 2)]  # AutoDL's op order
    x, y = batch(seed=5)
    real = torch.Tensor.exponential_

    def feed(order):
        queue = list(noise if order == "autodl" else [n[:, TO_AUTODL] for n in noise])

        def draw(self, *args, **kwargs):
            return self.copy_(queue.pop(0))
        return draw

    theirs.set_tau(2.0)
    monkeypatch.setattr(torch.Tensor, "exponential_", feed("autodl"))
    _, ref = theirs(x)
    monkeypatch.setattr(torch.Tensor, "exponential_", feed("ours"))
    logits = ours(x, mode="gumbel", tau=2.0)
    monkeypatch.setattr(torch.Tensor, "exponential_", real)
    pools = {PRIMITIVES.index("max_pool_3x3"), PRIMITIVES.index("avg_pool_3x3")}
    assert pools & set(ours.last_sample["normal"] + ours.last_sample["reduce"])
    assert torch.allclose(logits, ref, rtol=0, atol=TOL)
    F.cross_entropy(logits, y).backward()
    F.cross_entropy(ref, y).backward()
    for a, b in pairs:
        for name in ("weight", "bias"):
            pa, pb = getattr(a, name, None), getattr(b, name, None)
            if isinstance(pa, torch.nn.Parameter):
                ga = torch.zeros_like(pa) if pa.grad is None else pa.grad
                gb = torch.zeros_like(pb) if pb.grad is None else pb.grad
                assert torch.allclose(ga, gb, rtol=0, atol=TOL)
    assert torch.allclose(ours.alphas_normal.grad,
                          theirs.arch_normal_parameters.grad[:, TO_AUTODL], rtol=0, atol=TOL)
    assert torch.allclose(ours.alphas_reduce.grad,
                          theirs.arch_reduce_parameters.grad[:, TO_AUTODL], rtol=0, atol=TOL)
    # DARTS's pools (BN after the pool) change the sampled output
    darts = DartsSupernet(C=4, layers=3, lastact=True).double()
    darts.load_state_dict(ours.state_dict(), strict=False)
    monkeypatch.setattr(torch.Tensor, "exponential_", feed("ours"))
    other = darts(x, mode="gumbel", tau=2.0)
    monkeypatch.setattr(torch.Tensor, "exponential_", real)
    assert darts.last_sample == ours.last_sample
    assert not torch.allclose(other, logits, atol=1e-6)


def test_gdas_darts_space_search_writes_autodls_cell(cifar_root, tmp_path, capsys):
    """The arch-best of ``searching/gdas/search.py --space darts`` is AutoDL's genotype of the
    search's final alphas."""
    from api.spaces.arch_io import load_arch
    from searching.gdas import search as gdas_cli
    from tests.conftest import run_cli_inprocess

    save = tmp_path / "run"
    args = ["--space", "darts", "--dataset", "cifar10", "--data", cifar_root, "--save", save,
            "--epochs", 1, "--batch_size", 16, "--train_size", 64, "--init_channels", 4,
            "--layers", 3, "--seed", 3, "--device", "cpu", "--quiet", "--no_plots"]
    code, _, err = run_cli_inprocess(gdas_cli.main, args, capsys)
    assert code == 0, err
    state = torch.load(save / "checkpoint.pt", weights_only=True)["net"]
    theirs = nasnet_gdas()
    set_autodl_alphas(theirs, state["alphas_normal"], state["alphas_reduce"])
    found = load_arch(str(save / "arch-best")).value
    assert found == autodl_genotype_as_ours(theirs)
    # DARTS's rule gives another cell for these alphas (two inputs of one node are one input)
    net = DartsSupernet(C=4, layers=3, lastact=True, pool_bn=False)
    net.load_state_dict(state)
    assert net.derive(rule="gdas") == found and net.derive() != found
    assert any(found.normal[2 * i][1] == found.normal[2 * i + 1][1] for i in range(4))


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("stride", [1, 2])
def test_pooling_ops_equal_autodls_pooling(mode, stride):
    """C_in == C_out (every pooling op of AutoDL's NASNet and NAS-Bench-201 search cells):
    POOLING is the bare pool, as GDAS's MixedOp here (``pool_bn=False``); DARTS's MixedOp adds
    a BN. C_in != C_out: POOLING runs a 1x1 ReLU-conv-BN first (AutoDL's ``bias=not affine``),
    a form no search model here or in AutoDL's NASNet and NAS-Bench-201 cells builds."""
    torch.manual_seed(0)
    C = 4
    x = torch.randn(2, C, 8, 8, dtype=torch.float64)
    k = PRIMITIVES.index(f"{mode}_pool_3x3")
    theirs = POOLING(C, C, stride, mode, False, True).double()
    assert theirs.preprocess is None and not list(theirs.parameters())
    gdas_op = MixedOp(C, stride, pool_bn=False).double()._ops[k]
    assert not list(gdas_op.parameters()) and not list(gdas_op.buffers())
    assert torch.allclose(gdas_op(x), theirs(x), rtol=0, atol=TOL)
    darts_op = MixedOp(C, stride).double()._ops[k]
    assert isinstance(darts_op[1], torch.nn.BatchNorm2d)
    assert not torch.allclose(darts_op(x), theirs(x), atol=1e-3)
    assert torch.allclose(darts_op(x), darts_op[1](theirs(x)), rtol=0, atol=TOL)
    # C_in != C_out
    wide = POOLING(C, 2 * C, stride, mode, False, True).double()
    pre = ReLUConvBN(C, 2 * C, 1, affine=False).double()
    pre.load_state_dict({k2: v for k2, v in zip(pre.state_dict(),
                                                wide.preprocess.op.state_dict().values())})
    assert torch.allclose(wide(x), gdas_op(pre(x)), rtol=0, atol=TOL)
    # ... which AutoDL's search cells never build
    for model in (nasnet_gdas(), TinyNetworkGDAS(C, 1, 4, 10, NAS_BENCH_201, False, True)):
        pools = [m for m in model.modules() if isinstance(m, POOLING)]
        assert pools and all(m.preprocess is None for m in pools)


def test_nb201_avg_pool_equals_autodls_pooling():
    from api.spaces.nasbench201.network import make_op

    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    assert torch.allclose(make_op("avg_pool_3x3", 4, affine=False)(x),
                          POOLING(4, 4, 1, "avg", False, True)(x), rtol=0, atol=TOL)
