"""AutoDL-Projects' own code (the pip package ``xautodl``) as the oracle of RSPS and SETN's
sampled cells: ``TinyNetworkRANDOM`` / ``TinyNetworkSETN`` and our supernet built with the same
state, in float64 at tiny sizes.

- One drawn cell: logits and every gradient equal ``forward_dynamic``'s to 1e-10.
- The draw: our ``UniformCells`` seeded as AutoDL's global ``random`` gives the very cells of
  ``TinyNetworkRANDOM.random_genotype`` and ``TinyNetworkSETN.dync_genotype(True)``.
- Three RSPS steps against AutoDL's step (``exps/NAS-Bench-201-algos/RANDOM-NAS.py``,
  ``search_func``; outside the wheel, written out here: ``random_genotype(True)``,
  ``w_optimizer.zero_grad()``, cross-entropy, ``clip_grad_norm_(network.parameters(), 5)``,
  Nesterov SGD), with PyTorch < 2.0's ``zero_grad`` (gradients zeroed in place,
  ``set_to_none=False``): parameters, gradients and BN statistics to 1e-10.
"""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("xautodl", reason="AutoDL-Projects' xautodl package is not installed "
                                      "(pip install xautodl --no-deps)")
from xautodl.models.cell_operations import NAS_BENCH_201  # noqa: E402
from xautodl.models.cell_searchs.genotypes import Structure  # noqa: E402
from xautodl.models.cell_searchs.search_model_random import TinyNetworkRANDOM  # noqa: E402
from xautodl.models.cell_searchs.search_model_setn import TinyNetworkSETN  # noqa: E402

from api.spaces import get_space  # noqa: E402
from api.spaces.nasbench201.supernet import NASBench201Supernet  # noqa: E402
from searching.oneshot.sampling import UniformCells  # noqa: E402
from searching.oneshot.trainer import OneShotConfig  # noqa: E402
from searching.rsps.method import RSPS  # noqa: E402

TOL = 1e-10
SPACE = get_space("nas-bench-201")
pytestmark = pytest.mark.usefixtures("one_thread")


def pair(cls, seed: int = 0, C: int = 4, N: int = 1):
    """(ours, AutoDL's) in float64, AutoDL's state copied into ours (parameters and buffers
    registered in the same order; ``TinyNetworkRANDOM`` has no alpha, ours keeps its own)."""
    torch.manual_seed(seed)
    theirs = cls(C, N, 4, 10, NAS_BENCH_201, False, True).double()
    ours = NASBench201Supernet(10, C=C, N=N, affine=False, track_running_stats=True).double()
    src = theirs.state_dict()
    dst = {k: v for k, v in ours.state_dict().items() if cls is TinyNetworkSETN or
           not k.startswith("alpha")}
    assert len(src) == len(dst)
    state = ours.state_dict()
    with torch.no_grad():
        for (_, a), (name, b) in zip(src.items(), dst.items()):
            assert a.shape == b.shape, name
            state[name] = a.clone()
        ours.load_state_dict(state)
    return ours, theirs


def structure(cell) -> Structure:
    return Structure([tuple((op, j) for op, j in node) for node in cell.nodes()])


def batch(n: int = 4, seed: int = 1, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, size, size, generator=g, dtype=torch.float64),
            torch.randint(0, 10, (n,), generator=g))


def weights_of(net):
    return [p for name, p in net.named_parameters() if not name.startswith("alpha")
            and name != "arch_parameters"]


def assert_close(ours, theirs, what):
    a, b = weights_of(ours), weights_of(theirs)
    assert len(a) == len(b)
    for k, (p, q) in enumerate(zip(a, b)):
        assert torch.allclose(p, q, rtol=0, atol=TOL), (what, "param", k)
        if p.grad is None or q.grad is None:
            assert p.grad is None and q.grad is None, (what, "grad presence", k)
        else:
            assert torch.allclose(p.grad, q.grad, rtol=0, atol=TOL), (what, "grad", k)


@pytest.mark.parametrize("cls", [TinyNetworkRANDOM, TinyNetworkSETN])
def test_fixed_cell_logits_and_gradients_equal_forward_dynamic(cls):
    ours, theirs = pair(cls, seed=2)
    x, y = batch(seed=3)
    for text in ("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+"
                 "|skip_connect~0|nor_conv_3x3~1|none~2|",
                 "|none~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|"):
        cell = SPACE.parse(text)
        ours.zero_grad(set_to_none=True)
        theirs.zero_grad(set_to_none=True)
        if cls is TinyNetworkRANDOM:
            theirs.arch_cache = structure(cell)
        else:
            theirs.set_cal_mode("dynamic", structure(cell))
        logits = ours(x, mode="fixed", arch=cell)
        _, ref = theirs(x)
        assert torch.allclose(logits, ref, rtol=0, atol=TOL)
        F.cross_entropy(logits, y).backward()
        F.cross_entropy(ref, y).backward()
        assert_close(ours, theirs, text)


@pytest.mark.parametrize("seed", [0, 7])
def test_uniform_cells_are_autodls_draws(seed):
    randnet = TinyNetworkRANDOM(2, 1, 4, 10, NAS_BENCH_201, False, True)
    setn = TinyNetworkSETN(2, 1, 4, 10, NAS_BENCH_201, False, True)
    ours = UniformCells(SPACE, seed)
    random.seed(seed)
    theirs = [randnet.random_genotype(True).tostr() for _ in range(30)]
    assert [SPACE.format(ours.sample()) for _ in range(30)] == theirs
    ours = UniformCells(SPACE, seed)
    random.seed(seed)
    theirs = [setn.dync_genotype(True).tostr() for _ in range(30)]
    assert [SPACE.format(ours.sample()) for _ in range(30)] == theirs


def test_rsps_steps_equal_autodls_step():
    ours, theirs = pair(TinyNetworkRANDOM, seed=4)
    sgd = dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    t_opt = torch.optim.SGD(theirs.parameters(), **sgd)
    o_opt = torch.optim.SGD(ours.weight_parameters(), **sgd)
    method = RSPS(unused_grads="zero", seed=9)
    method.bind(ours, o_opt, OneShotConfig(space="nas-bench-201", epochs=1, grad_clip=5.0))
    random.seed(9)  # AutoDL's prepare_seed seeds the global random its draws use
    for k in range(3):
        x, y = batch(seed=10 + k)
        method.step(ours, (x, y), None, 0, k)
        # AutoDL's search_func body (PyTorch < 2.0: zero_grad zeroes in place)
        theirs.random_genotype(True)
        t_opt.zero_grad(set_to_none=False)
        _, logits = theirs(x)
        F.cross_entropy(logits, y).backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 5)
        t_opt.step()
        assert_close(ours, theirs, f"step {k}")
    for (name, a), b in zip([kv for kv in ours.state_dict().items()
                             if not kv[0].startswith("alpha")], theirs.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), rtol=0, atol=TOL), name
