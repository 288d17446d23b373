"""DARTS's architecture step (searching/darts/architect.py) against hand computations on a
2-node toy supernet, plus a smoke run on the NAS-Bench-201 supernet."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from searching.darts.architect import Architect

D = 3
XI = 0.5          # a large ξ so that w' is far from w (tells "around w" from "around w'")
MOM, WD = 0.9, 3e-4


class Toy(nn.Module):
    """Two nodes, each a softmax(alpha)-mix of two bias-free linear ops; BN (no affine, with
    running statistics) and tanh between them."""

    def __init__(self, p_drop=0.0):
        super().__init__()
        self.p_drop = p_drop
        self.ops = nn.ModuleList(nn.Linear(D, D, bias=False) for _ in range(4))
        self.bn = nn.BatchNorm1d(D, affine=False)
        self.alpha = nn.Parameter(0.3 * torch.randn(2, 2))

    def arch_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return [p for n, p in self.named_parameters() if n != "alpha"]

    def forward(self, x, mode="softmax"):
        a = torch.softmax(self.alpha, -1)
        h = a[0, 0] * self.ops[0](x) + a[0, 1] * self.ops[1](x)
        h = F.dropout(torch.tanh(self.bn(h)), self.p_drop, training=self.p_drop > 0)
        return a[1, 0] * self.ops[2](h) + a[1, 1] * self.ops[3](h)


def toy_loss(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


def hand_loss(ws, alpha, batch, p_drop=0.0):
    """The toy's loss written out: weights ``ws`` (4 matrices), ``alpha`` (2, 2); the same
    dropout call as the toy's, so the same RNG state gives the same mask."""
    x, y = batch
    a = torch.softmax(alpha, -1)
    h = a[0, 0] * x @ ws[0].T + a[0, 1] * x @ ws[1].T
    h = F.dropout(torch.tanh(F.batch_norm(h, None, None, training=True)), p_drop,
                  training=p_drop > 0)
    out = a[1, 0] * h @ ws[2].T + a[1, 1] * h @ ws[3].T
    return ((out - y) ** 2).mean()


def make(seed=0, p_drop=0.0):
    torch.manual_seed(seed)
    model = Toy(p_drop).double()
    g = torch.Generator().manual_seed(seed + 1)
    batches = [(torch.randn(8, D, generator=g, dtype=torch.float64),
                torch.randn(8, D, generator=g, dtype=torch.float64)) for _ in range(3)]
    return model, batches  # batches: an earlier training batch, train, val


def sgd_with_state(model, batch):
    """DARTS's weight optimizer after one weight step (so it holds momentum buffers)."""
    opt = torch.optim.SGD(model.weight_parameters(), lr=XI, momentum=MOM, weight_decay=WD)
    opt.zero_grad()
    toy_loss(model, batch).backward()
    opt.step()
    model.alpha.grad = None
    return opt


def adam_reference(alpha, grad):
    a = alpha.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([a], lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    a.grad = grad.clone()
    opt.step()
    return a.detach()


def hand_v2(ws, alpha, bufs, train, val, xi, around_w=True, clip=None, p_drop=0.0,
            rewind=True):
    """dα of DARTS-V2 written out with torch.autograd: the virtual step with momentum and
    weight decay, then the central difference of ∇α L_train around w (or w', for contrast).
    ``clip``: the RNN's clipping of the training gradient and of v. With dropout, w⁻ sees
    w⁺'s random numbers (``rewind``), and so does the exact product."""
    def norm(ts):
        return torch.sqrt(sum((t ** 2).sum() for t in ts))

    ws = [w.detach().clone().requires_grad_(True) for w in ws]
    alpha = alpha.detach().clone().requires_grad_(True)
    g = torch.autograd.grad(hand_loss(ws, alpha, train, p_drop), ws)
    c = 1.0
    if clip is not None:
        c = min(1.0, clip / (float(norm(g)) + 1e-6))
        g = [gi * c for gi in g]
    wv = [(w - xi * (MOM * b + gi + WD * w)).detach().requires_grad_(True)
          for w, b, gi in zip(ws, bufs, g)]
    grads = torch.autograd.grad(hand_loss(wv, alpha, val, p_drop), [alpha] + wv)
    dalpha_val, v = grads[0], grads[1:]
    if clip is not None:
        cv = min(1.0, clip / (float(norm(v)) + 1e-6))
        v = [t * cv for t in v]
    eps = 0.01 / norm(v)
    base = ws if around_w else wv
    wp = [(w + eps * t).detach() for w, t in zip(base, v)]
    wn = [(w - eps * t).detach() for w, t in zip(base, v)]
    state = torch.get_rng_state()
    gp, = torch.autograd.grad(hand_loss(wp, alpha, train, p_drop), alpha)
    if rewind:
        torch.set_rng_state(state)
    gn, = torch.autograd.grad(hand_loss(wn, alpha, train, p_drop), alpha)
    fd = (gp - gn) / (2 * eps)
    # the exact mixed second derivative ∇α (∇w L_train(w, α) · v) by double backward
    torch.set_rng_state(state)
    gw = torch.autograd.grad(hand_loss(ws, alpha, train, p_drop), ws, create_graph=True)
    exact, = torch.autograd.grad(sum((a * t).sum() for a, t in zip(gw, v)), alpha)
    return dalpha_val - xi * c * fd, dalpha_val - xi * c * exact


def snapshot(model):
    return ([p.detach().clone() for p in model.parameters()],
            [None if p.grad is None else p.grad.clone() for p in model.weight_parameters()],
            [b.clone() for b in model.buffers()])


def assert_unchanged(model, snap, skip_alpha=True):
    params, grads, bufs = snap
    for (n, p), q in zip(model.named_parameters(), params):
        if skip_alpha and n == "alpha":
            continue
        assert torch.equal(p.detach(), q), n
    for p, g in zip(model.weight_parameters(), grads):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    for b, c in zip(model.buffers(), bufs):
        assert torch.equal(b, c)


def test_v1_is_the_validation_gradient():
    model, (early, train, val) = make()
    opt = sgd_with_state(model, early)
    alpha0 = model.alpha.detach().clone()
    ws = [p.detach() for p in model.weight_parameters()]
    a = alpha0.clone().requires_grad_(True)
    want, = torch.autograd.grad(hand_loss(ws, a, val), a)

    arch = Architect(model, toy_loss)
    snap = snapshot(model)
    loss = arch.step(train, val, XI, opt, unrolled=False)
    assert torch.allclose(model.alpha.grad, want, rtol=0, atol=1e-12)
    assert torch.allclose(loss, hand_loss(ws, alpha0, val), atol=1e-12)
    assert torch.allclose(model.alpha.detach(), adam_reference(alpha0, want), atol=1e-14)
    assert not torch.equal(model.alpha.detach(), alpha0)
    assert_unchanged(model, snap)


def test_v2_is_the_hand_computed_second_order_gradient():
    model, (early, train, val) = make()
    opt = sgd_with_state(model, early)
    alpha0 = model.alpha.detach().clone()
    ws = [p.detach().clone() for p in model.weight_parameters()]
    bufs = [opt.state[p]["momentum_buffer"].clone() for p in model.weight_parameters()]
    want, exact = hand_v2(ws, alpha0, bufs, train, val, XI)
    around_w_prime, _ = hand_v2(ws, alpha0, bufs, train, val, XI, around_w=False)

    arch = Architect(model, toy_loss)
    arch.step(train, val, XI, opt, unrolled=True)
    got = model.alpha.grad
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
    # the central difference is the exact Hessian-vector product up to O(ε²)
    assert torch.allclose(got, exact, rtol=1e-4, atol=1e-8)
    # ... and evaluating it around w' (darts#21) would give a clearly different gradient
    assert (got - around_w_prime).abs().max() > 1e3 * (got - exact).abs().max()
    assert torch.allclose(model.alpha.detach(), adam_reference(alpha0, want), atol=1e-12)


def test_virtual_step_is_the_optimizers_next_sgd_step():
    model, (early, train, val) = make(3)
    arch = Architect(model, toy_loss)
    for with_state in (False, True):  # first step: no momentum buffer yet (zero)
        opt = (sgd_with_state(model, early) if with_state else
               torch.optim.SGD(model.weight_parameters(), lr=XI, momentum=MOM, weight_decay=WD))
        w_virtual = arch.virtual_step(train, XI, opt)
        # hand-written SGD step: d = g + wd·w; b' = μ b + d; w' = w − ξ b'
        ws = [p.detach().clone().requires_grad_(True) for p in model.weight_parameters()]
        g = torch.autograd.grad(hand_loss(ws, model.alpha.detach(), train), ws)
        for p, w, gi, wv in zip(model.weight_parameters(), ws, g, w_virtual):
            b = opt.state[p]["momentum_buffer"] if with_state else torch.zeros_like(w)
            assert torch.allclose(wv, w - XI * (MOM * b + gi + WD * w), rtol=0, atol=1e-13)
        # torch's own SGD step on a copy lands on the same weights
        twin = copy.deepcopy(model)
        topt = torch.optim.SGD(twin.weight_parameters(), lr=XI, momentum=MOM, weight_decay=WD)
        topt.load_state_dict(opt.state_dict())
        topt.zero_grad()
        toy_loss(twin, train).backward()
        topt.step()
        for p, wv in zip(twin.weight_parameters(), w_virtual):
            assert torch.allclose(p.detach(), wv, rtol=0, atol=1e-13)
        # without momentum and weight decay it is the plain gradient step of the paper
    plain = torch.optim.SGD(model.weight_parameters(), lr=XI)
    ws = [p.detach().clone().requires_grad_(True) for p in model.weight_parameters()]
    g = torch.autograd.grad(hand_loss(ws, model.alpha.detach(), train), ws)
    for w, gi, wv in zip(ws, g, arch.virtual_step(train, XI, plain)):
        assert torch.allclose(wv, w - XI * gi, rtol=0, atol=1e-13)


@pytest.mark.parametrize("unrolled", [False, True])
def test_step_leaves_weights_grads_and_buffers_as_they_were(unrolled):
    model, (early, train, val) = make(5)
    opt = sgd_with_state(model, early)       # non-trivial BN running stats, momentum
    for p in model.weight_parameters():      # pre-existing weight grads must survive
        p.grad = torch.randn_like(p)
    snap = snapshot(model)
    state = copy.deepcopy(opt.state_dict())
    alpha0 = model.alpha.detach().clone()
    arch = Architect(model, toy_loss)
    arch.step(train, val, XI, opt, unrolled=unrolled)
    assert_unchanged(model, snap)
    assert not torch.equal(model.alpha.detach(), alpha0)
    after = opt.state_dict()["state"]
    for k, v in state["state"].items():
        assert torch.equal(after[k]["momentum_buffer"], v["momentum_buffer"])


def test_aux_output_and_optimizer_state_round_trip():
    model, (early, train, val) = make(7)

    def loss_with_aux(m, batch):
        return toy_loss(m, batch), "hidden"

    arch = Architect(model, loss_with_aux)
    arch.step(train, val, XI, sgd_with_state(model, early), unrolled=True)
    assert arch.last_aux == "hidden"
    other = Architect(model, loss_with_aux)
    other.load_state_dict(arch.state_dict())
    assert other.optimizer.state_dict()["state"][0]["step"] == 1


def test_nb201_supernet_smoke():
    from api.spaces import get_space

    torch.manual_seed(0)
    net = get_space("nas-bench-201").supernet(C=4, N=1, num_classes=10)
    net.train()
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0], mode="softmax"), batch[1])

    opt.zero_grad()
    loss_fn(net, (x, y)).backward()
    opt.step()
    arch = Architect(net, loss_fn)
    for unrolled in (False, True):
        snap = ([p.detach().clone() for p in net.weight_parameters()],
                [b.clone() for b in net.buffers()])
        alpha0 = [a.detach().clone() for a in net.arch_parameters()]
        arch.step((x, y), (x.flip(0), y.flip(0)), 0.025, opt, unrolled=unrolled)
        assert any(not torch.equal(a.detach(), b) for a, b in zip(net.arch_parameters(), alpha0))
        assert all(torch.isfinite(a.grad).all() for a in net.arch_parameters())
        assert all(torch.equal(p.detach(), q) for p, q in zip(net.weight_parameters(), snap[0]))
        assert all(torch.equal(b, c) for b, c in zip(net.buffers(), snap[1]))


def test_nesterov_optimizer_still_unrolls_with_dartss_formula():
    """AutoDL's NB201 DARTS-V2 uses Nesterov SGD and DARTS's heavy-ball unroll; so do we."""
    model, (early, train, val) = make(2)
    opt = torch.optim.SGD(model.weight_parameters(), lr=XI, momentum=MOM, weight_decay=WD,
                          nesterov=True)
    opt.zero_grad()
    toy_loss(model, early).backward()
    opt.step()
    arch = Architect(model, toy_loss)
    ws = [p.detach().clone().requires_grad_(True) for p in model.weight_parameters()]
    g = torch.autograd.grad(hand_loss(ws, model.alpha.detach(), train), ws)
    for p, w, gi, wv in zip(model.weight_parameters(), ws, g, arch.virtual_step(train, XI, opt)):
        b = opt.state[p]["momentum_buffer"]
        assert torch.allclose(wv, w - XI * (MOM * b + gi + WD * w), rtol=0, atol=1e-13)


@pytest.mark.parametrize("clip", [1e-3, 1e3])
def test_rnn_style_clipping(clip):
    """grad_clip: clipped training gradient and v, implicit term scaled by ξ·c; a clip that
    never bites gives plain V2."""
    model, (early, train, val) = make(4)
    opt = sgd_with_state(model, early)
    alpha0 = model.alpha.detach().clone()
    ws = [p.detach().clone() for p in model.weight_parameters()]
    bufs = [opt.state[p]["momentum_buffer"].clone() for p in model.weight_parameters()]
    want, exact = hand_v2(ws, alpha0, bufs, train, val, XI, clip=clip)
    Architect(model, toy_loss, grad_clip=clip).step(train, val, XI, opt, unrolled=True)
    assert torch.allclose(model.alpha.grad, want, rtol=1e-9, atol=1e-12)
    assert torch.allclose(model.alpha.grad, exact, rtol=1e-4, atol=1e-8)
    if clip > 1:
        plain, _ = hand_v2(ws, alpha0, bufs, train, val, XI)
        assert torch.allclose(model.alpha.grad, plain, rtol=1e-9, atol=1e-12)


def test_dropout_w_plus_and_w_minus_share_the_random_numbers():
    model, (early, train, val) = make(6, p_drop=0.3)
    opt = sgd_with_state(model, early)
    alpha0 = model.alpha.detach().clone()
    ws = [p.detach().clone() for p in model.weight_parameters()]
    bufs = [opt.state[p]["momentum_buffer"].clone() for p in model.weight_parameters()]
    arch = Architect(model, toy_loss)
    torch.manual_seed(11)
    arch.step(train, val, XI, opt, unrolled=True)
    torch.manual_seed(11)
    want, exact = hand_v2(ws, alpha0, bufs, train, val, XI, p_drop=0.3)
    torch.manual_seed(11)
    two_masks, _ = hand_v2(ws, alpha0, bufs, train, val, XI, p_drop=0.3, rewind=False)
    got = model.alpha.grad
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
    assert torch.allclose(got, exact, rtol=1e-4, atol=1e-8)
    assert (got - two_masks).abs().max() > 1e3 * (got - exact).abs().max()
