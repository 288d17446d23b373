"""DARTS-V2's virtual step on the RNN search (searching/darts/architect.py,
searching/darts/method_rnn.py): the official step (quark0/darts ``rnn/architect.py``) and the
exact one (``--exact_virtual_step``), each against a float64 reference written out here."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from api.spaces.darts_rnn.supernet import DartsRNNSupernet
from searching.darts import train_search_rnn as rnn_cli
from searching.darts.architect import Architect
from searching.darts.method_rnn import DARTSRNN, _lm_loss
from searching.oneshot.trainer import OneShotConfig
from tests.conftest import run_cli_inprocess, write_chain_corpus

XI, WD = 2.0, 0.05   # large enough that w' is far from w
NTOK, EMB, T, B = 7, 4, 3, 2


class _OfficialLayout(nn.Module):
    """The parameter layout of DARTS's ``rnn/model.py`` ``RNNModel``: an embedding registered
    before the cell, a decoder registered after it whose weight is the embedding's."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(NTOK, EMB)
        self.rnn = nn.Linear(EMB, EMB)
        self.decoder = nn.Linear(EMB, NTOK)
        self.decoder.weight = self.encoder.weight


def test_official_unrolled_model_gets_the_stale_tied_weight_back():
    """``_construct_model_from_theta`` (official ``rnn/architect.py``) rebuilt step by step:
    θ is the concatenation of ``named_parameters()`` (the tied weight once, as
    ``encoder.weight``); the stepped values go into a copy of ``state_dict()`` (which holds the
    tied weight twice), and ``load_state_dict`` on a fresh model copies ``encoder.weight``
    (stepped), then ``decoder.weight`` (the stale w) into the same tensor: w' keeps the
    embedding at w while every other weight moves."""
    torch.manual_seed(0)
    model = _OfficialLayout().double()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["encoder.weight", "rnn.weight", "rnn.bias", "decoder.bias"]
    assert {"encoder.weight", "decoder.weight"} <= set(model.state_dict())
    stepped = {n: p.detach() - 0.5 for n, p in model.named_parameters()}
    state = model.state_dict()
    state.update(stepped)
    fresh = _OfficialLayout().double()
    fresh.load_state_dict(state)
    assert fresh.decoder.weight is fresh.encoder.weight
    assert torch.equal(fresh.encoder.weight, model.encoder.weight)          # stale: w
    for name in ("rnn.weight", "rnn.bias", "decoder.bias"):
        assert torch.equal(dict(fresh.named_parameters())[name], stepped[name])  # w'


def _setup(seed=0):
    torch.manual_seed(seed)
    net = DartsRNNSupernet(NTOK, EMB, dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0,
                           dropoute=0.0).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # a larger alpha than the init, so that its gradient is not tiny
        net.alpha.copy_(0.5 * torch.randn(net.alpha.shape, generator=g, dtype=torch.float64))

    def batch():
        x = torch.randint(NTOK, (T, B), generator=g)
        y = torch.randint(NTOK, (T, B), generator=g)
        return x, y, torch.randn(B, EMB, generator=g, dtype=torch.float64)

    return net, batch(), batch()


def _reference_dalpha(net, train, val, clip, exact):
    """dα of the RNN's DARTS-V2, written out (official ``rnn/architect.py``
    ``_compute_unrolled_model``, ``_backward_step_unrolled``, ``_hessian_vector_product``):
    g = ∇w L_train(w); c = clip / (‖g‖ + 1e-6); w' = w − ξ (min(1, c)·g + λ w), except the
    tied embedding, which the official step leaves at w; dα_val, v = ∇(α, w) L_val(w');
    v clipped to ``clip``; R = 0.01 / ‖v‖; dα = dα_val − ξ·s·(∇α L_train(w + R v) −
    ∇α L_train(w − R v)) / 2R, with s = c (official, even above 1) or min(1, c) (exact)."""
    ref = copy.deepcopy(net)
    names = [n for n, _ in ref.named_parameters() if n != "alpha"]
    params = dict(ref.named_parameters())
    w = {n: params[n].detach().clone() for n in names}

    def at(values, batch):
        with torch.no_grad():
            for n in names:
                params[n].copy_(values[n])
        loss, _ = ref.loss(*batch)
        return loss

    def norm(ts):
        return float(torch.sqrt(sum((t ** 2).sum() for t in ts)))

    g = dict(zip(names, torch.autograd.grad(at(w, train), [params[n] for n in names])))
    c = clip / (norm(g.values()) + 1e-6)
    applied = min(1.0, c)
    w1 = {n: w[n] - XI * (applied * g[n] + WD * w[n]) for n in names}
    if not exact:
        w1["encoder.weight"] = w["encoder.weight"].clone()
    out = torch.autograd.grad(at(w1, val), [params["alpha"]] + [params[n] for n in names])
    dalpha_val, v = out[0], dict(zip(names, out[1:]))
    cv = min(1.0, clip / (norm(v.values()) + 1e-6))
    v = {n: t * cv for n, t in v.items()}
    r = 0.01 / norm(v.values())
    gp, = torch.autograd.grad(at({n: w[n] + r * v[n] for n in names}, train), params["alpha"])
    gn, = torch.autograd.grad(at({n: w[n] - r * v[n] for n in names}, train), params["alpha"])
    scale = applied if exact else c
    return dalpha_val - XI * scale * (gp - gn) / (2 * r), c


def _architect_dalpha(net, train, val, clip, exact):
    method = DARTSRNN(unrolled=True, exact_virtual_step=exact)
    weights = [p for p in net.weight_parameters()]
    opt = torch.optim.SGD(weights, lr=XI, weight_decay=WD)
    method.bind(net, opt, OneShotConfig(space="darts-rnn", grad_clip=clip))
    before = [p.detach().clone() for p in net.parameters()]
    method.architect.step(train, val, XI, opt, unrolled=True)
    for (n, p), q in zip(net.named_parameters(), before):
        if n != "alpha":
            assert torch.equal(p.detach(), q), n  # the step leaves the weights at w
    return net.alpha.grad.detach().clone()


@pytest.mark.parametrize("clip", [0.05, 50.0])   # the training gradient clipped / not clipped
@pytest.mark.parametrize("exact", [False, True])
def test_rnn_v2_equals_the_float64_reference(exact, clip):
    net, train, val = _setup()
    want, c = _reference_dalpha(net, train, val, clip, exact)
    assert (c < 1) == (clip < 1)  # each regime is exercised
    got = _architect_dalpha(net, train, val, clip, exact)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
    # the other variant's reference is clearly different: the test tells them apart
    other, _ = _reference_dalpha(net, train, val, clip, not exact)
    assert (got - other).abs().max() > 1e-4 * want.abs().max()


def test_official_default_and_exact_flag_wire_the_architect():
    net, _, _ = _setup()
    opt = torch.optim.SGD(list(net.weight_parameters()), lr=XI)
    cfg = OneShotConfig(space="darts-rnn", grad_clip=0.25)
    official = DARTSRNN(unrolled=True)
    official.bind(net, opt, cfg)
    assert official.architect._unstepped == {id(net.encoder.weight)}
    assert not official.architect.cap_clip_factor
    assert official.settings()["virtual_step"] == "official"
    exact = DARTSRNN(unrolled=True, exact_virtual_step=True)
    exact.bind(net, opt, cfg)
    assert exact.architect._unstepped == set() and exact.architect.cap_clip_factor
    assert exact.settings()["virtual_step"] == "exact"
    assert "virtual_step" not in DARTSRNN(unrolled=False).settings()
    # the library default (CNN supernets) stays the plain capped step
    plain = Architect(net, _lm_loss, grad_clip=0.25)
    assert plain._unstepped == set() and plain.cap_clip_factor
    # what the official step leaves behind: the embedding, most of the default search weights
    full = DartsRNNSupernet(10000, 300)
    share = full.encoder.weight.numel() / sum(p.numel() for p in full.weight_parameters())
    assert share == pytest.approx(3_000_000 / 4_810_000)


def test_cli_flag_recorded_and_needs_unrolled(tmp_path, capsys, one_thread):
    data = write_chain_corpus(tmp_path / "ptb", 24, 12, vocab=12, follow=0.8)
    base = ["--data", data, "--emsize", 8, "--nhid", 8, "--epochs", 1, "--bptt", 5,
            "--batch_size", 4, "--seed", 3, "--device", "cpu", "--quiet", "--no_plots"]
    assert rnn_cli.build_parser().parse_args([]).exact_virtual_step is False
    code, out, err = run_cli_inprocess(
        rnn_cli.main, [*base, "--save", tmp_path / "v1", "--exact_virtual_step"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--unrolled" in err, err
    save = tmp_path / "v2"
    code, out, err = run_cli_inprocess(
        rnn_cli.main, [*base, "--save", save, "--unrolled", "--exact_virtual_step"], capsys)
    assert code == 0, err
    assert json.loads((save / "args.json").read_text())["exact_virtual_step"] is True
    ckpt = torch.load(save / "checkpoint.pt", weights_only=True)
    assert ckpt["settings"]["method_settings"]["virtual_step"] == "exact"
