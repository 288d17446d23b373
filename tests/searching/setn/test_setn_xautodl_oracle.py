"""AutoDL-Projects' own code (the pip package ``xautodl``) as the oracle of SETN:
``TinyNetworkSETN`` and our supernet built with the same state and alphas, float64, tiny sizes.

- The candidates: ``top_k_cells`` equals ``TinyNetworkSETN.return_topK`` (float32 alphas as
  AutoDL's, random and with ties; k = 100 and every cell's order on a coarser check).
- The joint forward (every op weighted by softmax(alpha)): logits and every gradient equal
  ``set_cal_mode("joint")`` to 1e-10.
- Three SETN steps against AutoDL's step (``exps/NAS-Bench-201-algos/SETN.py``,
  ``search_func``; outside the wheel, written out here: ``dync_genotype(True)`` and the
  ``dynamic`` mode, ``network.zero_grad()``, the weights' SGD step without clipping, then
  ``joint`` mode, ``network.zero_grad()``, Adam on the alphas), with PyTorch < 2.0's
  ``zero_grad`` (``set_to_none=False``) and the draws from the global ``random`` seeded as
  our generator: parameters, alphas, gradients and BN statistics to 1e-10.
"""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("xautodl", reason="AutoDL-Projects' xautodl package is not installed "
                                      "(pip install xautodl --no-deps)")
from xautodl.models.cell_searchs.search_model_setn import TinyNetworkSETN  # noqa: E402

from api.spaces import get_space  # noqa: E402
from searching.oneshot.trainer import OneShotConfig  # noqa: E402
from searching.setn.method import SETN, top_k_cells  # noqa: E402
from tests.searching.rsps.test_rsps_xautodl_oracle import (TOL, assert_close,  # noqa: E402
                                                            batch, pair)

SPACE = get_space("nas-bench-201")
pytestmark = pytest.mark.usefixtures("one_thread")


def setn_pair(seed: int):
    ours, theirs = pair(TinyNetworkSETN, seed=seed)
    with torch.no_grad():
        alpha = torch.randn(6, 5, dtype=torch.float64)
        theirs.arch_parameters.copy_(alpha)
        ours.alpha_cell.copy_(alpha)
    return ours, theirs


@pytest.mark.parametrize("case", ["random", "ties"])
def test_top_k_cells_equal_return_topk(case):
    net = TinyNetworkSETN(2, 1, 4, 10, ["none", "skip_connect", "nor_conv_1x1",
                                        "nor_conv_3x3", "avg_pool_3x3"], False, True)
    with torch.no_grad():
        if case == "random":
            net.arch_parameters.copy_(torch.randn(6, 5, generator=torch.Generator()
                                                  .manual_seed(3)))
        else:  # rows with equal entries: many cells tie
            net.arch_parameters.copy_(torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0]] * 3 +
                                                   [[0.5, 0.5, 0.5, 0.5, 0.2]] * 3))
    want = [a.tostr() for a in net.return_topK(100)]
    got = [SPACE.format(c) for c in top_k_cells(net.arch_parameters, 100, SPACE)]
    assert got == want


def test_joint_logits_and_gradients_equal_tiny_network_setn():
    ours, theirs = setn_pair(seed=2)
    theirs.set_cal_mode("joint")
    x, y = batch(seed=3)
    logits = ours(x, mode="softmax")
    _, ref = theirs(x)
    assert torch.allclose(logits, ref, rtol=0, atol=TOL)
    F.cross_entropy(logits, y).backward()
    F.cross_entropy(ref, y).backward()
    assert_close(ours, theirs, "joint")
    assert torch.allclose(ours.alpha_cell.grad, theirs.arch_parameters.grad, rtol=0, atol=TOL)


def test_setn_steps_equal_autodls_step():
    ours, theirs = setn_pair(seed=4)
    sgd = dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    adam = dict(lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    t_w = torch.optim.SGD(theirs.get_weights(), **sgd)
    t_a = torch.optim.Adam(theirs.get_alphas(), **adam)
    o_w = torch.optim.SGD(ours.weight_parameters(), **sgd)
    method = SETN(arch_lr=3e-4, arch_weight_decay=1e-3, unused_grads="zero", seed=9)
    method.bind(ours, o_w, OneShotConfig(space="nas-bench-201", epochs=1, grad_clip=0.0))
    random.seed(9)  # AutoDL's prepare_seed seeds the global random its draws use
    for k in range(3):
        (xw, yw), (xa, ya) = batch(seed=10 + k), batch(seed=20 + k)
        method.step(ours, (xw, yw), (xa, ya), 0, k)
        # AutoDL's search_func body (PyTorch < 2.0: zero_grad zeroes in place)
        theirs.set_cal_mode("dynamic", theirs.dync_genotype(True))
        theirs.zero_grad(set_to_none=False)
        _, logits = theirs(xw)
        F.cross_entropy(logits, yw).backward()
        t_w.step()
        theirs.set_cal_mode("joint")
        theirs.zero_grad(set_to_none=False)
        _, logits = theirs(xa)
        F.cross_entropy(logits, ya).backward()
        t_a.step()
        assert_close(ours, theirs, f"step {k}")
        assert torch.allclose(ours.alpha_cell, theirs.arch_parameters, rtol=0, atol=TOL)
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), rtol=0, atol=TOL), name
