"""bench/oneshot_speed.py: like-with-like timing of the one-shot search steps against AutoDL's
supernets. Checked here on tiny supernets in seconds: both sides start from the same state,
GDAS's two sides get the same Gumbel noise and so run the same sampled cells, the timed steps
come in interleaved pairs on the same batches, and the summary's ratio and spread."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from tests.conftest import REPO


@pytest.fixture(scope="module")
def osp():
    spec = importlib.util.spec_from_file_location("oneshot_speed", REPO / "bench/oneshot_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["oneshot_speed"] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("oneshot_speed", None)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a small shared CPU two threads per tiny op mostly wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_forced_sample_is_our_gumbel_sample_given_its_noise(osp):
    """forced_gumbel_hard(alpha, tau, g) == api.spaces.supernet.gumbel_hard when g is the
    noise gumbel_hard draws from the same generator (-log of an Exp(1) draw, as AutoDL)."""
    from api.spaces.supernet import gumbel_hard

    alpha = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    for seed in range(5):
        noise = -torch.empty_like(alpha).exponential_(
            generator=torch.Generator().manual_seed(seed)).log()
        hard, index = gumbel_hard(alpha, 3.0, generator=torch.Generator().manual_seed(seed))
        f_hard, f_index = osp.forced_gumbel_hard(alpha, 3.0, noise)
        assert torch.equal(index, f_index) and torch.equal(hard, f_hard)
        (g1,) = torch.autograd.grad((hard * torch.arange(30.).view(6, 5)).sum(), alpha)
        (g2,) = torch.autograd.grad((f_hard * torch.arange(30.).view(6, 5)).sum(), alpha)
        assert torch.equal(g1, g2)


def test_sequence_is_what_autodl_draws_after_seeding(osp):
    """AutoDL's TinyNetworkGDAS.forward (xautodl/models/cell_searchs/search_model_gdas.py)
    draws its noise as -log of exponentials shaped like the alphas from the global generator;
    the sequence's entry k is exactly that draw after torch.manual_seed(seeds[k])."""
    seq = osp.GumbelSequence(8, seed=3)
    assert len(seq.noise) == len(seq.seeds) == 8 and len(set(seq.seeds)) == 8
    state = torch.get_rng_state()
    try:
        for s, g in zip(seq.seeds, seq.noise):
            torch.manual_seed(s)
            assert torch.equal(-torch.empty(6, 5).exponential_().log(), g)
    finally:
        torch.set_rng_state(state)
    cur = seq.cursor()
    assert [cur.next_seed() for _ in range(8)] == seq.seeds
    with pytest.raises(RuntimeError, match="ran out"):
        cur.next_noise()


def test_paired_run_interleaves_pairs_on_the_same_batches(osp):
    calls = []
    steps = {side: (lambda x, y, side=side: calls.append((side, x, y)))
             for side in ("ours", "official")}
    batches = [(i, -i) for i in range(6)]
    out = osp.paired_run(steps, batches, warmup=2, count=4)
    assert calls[:4] == [("ours", 0, 0), ("official", 0, 0), ("ours", 1, -1),
                         ("official", 1, -1)]
    timed = calls[4:]
    assert [c[0] for c in timed] == ["ours", "official", "official", "ours"] * 2
    assert [c[1] for c in timed] == [2, 2, 3, 3, 4, 4, 5, 5]
    assert all(len(out[s][k]) == 4 for s in out for k in ("wall", "cpu"))


def test_summary_ratio_is_of_totals_and_spread_of_pairs(osp):
    ours = [100.0, 200.0, 100.0, 400.0]
    official = [300.0, 200.0, 150.0, 800.0]
    s = osp.summarize(ours, official)
    assert s["ratio"] == pytest.approx(1450 / 800)        # the sequence's totals
    assert s["pair_median"] == pytest.approx(1.75)          # pairs 3, 1, 1.5, 2
    assert (s["pair_min"], s["pair_max"]) == (1.0, 3.0)
    assert s["pair_q1"] == pytest.approx(1.375) and s["pair_q3"] == pytest.approx(2.25)
    assert s["ours_mean"] == 200.0 and s["official_median"] == 250.0 and s["steps"] == 4
    with pytest.raises(ValueError):
        osp.summarize([1.0], [1.0, 2.0])


def _xautodl():
    return pytest.importorskip("xautodl", reason="AutoDL's official code (pip install -e .[bench])")


@pytest.mark.slow
def test_copied_state_gives_the_official_darts_forward_ours(osp):
    """copy_state maps our NB201 supernet onto AutoDL's TinyNetworkDarts tensor by tensor:
    after it, both compute the same logits (float64) from the same input."""
    _xautodl()
    torch.manual_seed(0)
    _, ours, _ = osp.build_ours("darts-v1", True, C=4, N=1)
    _, official, _ = osp.build_official("darts-v1", True, C=4, N=1)
    ours.double().train()
    official.double().train()
    osp.copy_state(ours, official)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(ours(x), official(x)[1], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_gdas_sides_run_the_same_sampled_cells(osp):
    """With the same start state and the same Gumbel sequence, every forward of the paired
    run samples the same cell on both sides (observed by hooks on the ops that ran), and the
    cells vary from forward to forward."""
    _xautodl()
    seq = osp.GumbelSequence(2 * 5, seed=0)
    torch.manual_seed(0)
    o_step, ours, o_ops = osp.build_ours("gdas", True, seq.cursor(), C=4, N=1)
    f_step, official, f_ops = osp.build_official("gdas", True, seq.cursor(), C=4, N=1)
    osp.copy_state(ours, official)
    logs = {"ours": osp.SampleLog(o_ops), "official": osp.SampleLog(f_ops)}
    batches = osp.make_batches(5, 0, batch=4, size=8)
    osp.paired_run({"ours": o_step, "official": f_step}, batches, warmup=1, count=4)
    a, b = logs["ours"].forwards, logs["official"].forwards
    assert len(a) == len(b) == 10 and a == b
    assert len(set(a)) > 3
    torch.testing.assert_close(ours.alpha_cell, official.arch_parameters, rtol=1e-4, atol=1e-6)


def test_unknown_method_exits_2(osp, capsys):
    assert osp.main(["--methods", "gdas,nope"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown method(s) nope")
