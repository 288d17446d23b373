"""ENAS against its official code's arithmetic: the CNN controllers' Adam (TF), the
controller's momentum option, the child's gradient clip modes, the frozen micro auxiliary head,
the macro search network's BN statistics, and the RNN search's lr decay, reward windows and BN
initialisation (carpedm20/ENAS-pytorch). Reference computations are re-derived here, in
float64, from the official code named in each test."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from api.errors import UserError


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


# ------------------------------------------------------------------ controller optimizers
def _tf_adam_reference(w0, grads, lr, beta1=0.0, beta2=0.999, eps=1e-3):
    """TF 1.x ``AdamOptimizer`` as melodyguan/enas ``src/utils.py`` ``get_train_ops`` builds
    it for ``optim_algo="adam"`` (beta1 0, epsilon 1e-3): the step size carries both bias
    corrections and epsilon is added to the uncorrected sqrt(v)."""
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        w = w - lr_t * m / (np.sqrt(v) + eps)
    return w


def _run(opt_factory, w0, grads):
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = opt_factory([p])
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p.detach().numpy()


def test_cnn_controller_adam_is_tfs():
    from searching.enas.reinforce import TFAdam, make_controller_optimizer

    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    grads = [rng.normal(scale=1e-2, size=(3, 4)) for _ in range(6)]
    want = _tf_adam_reference(w0, grads, lr=3.5e-3)
    got = _run(lambda ps: make_controller_optimizer(ps, "adam", 3.5e-3, tf_adam=True), w0, grads)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # torch's Adam, even with TF's beta1 and epsilon, takes another step (epsilon placement)
    torch_adam = _run(lambda ps: torch.optim.Adam(ps, lr=3.5e-3, betas=(0.0, 0.999), eps=1e-3),
                      w0, grads)
    assert np.abs(torch_adam - want).max() > 1e-4
    # the RNN controller keeps carpedm20's torch.optim.Adam defaults
    rnn = make_controller_optimizer([torch.nn.Parameter(torch.zeros(1))], "adam", 3.5e-4)
    assert type(rnn) is torch.optim.Adam and rnn.defaults["betas"] == (0.9, 0.999)
    assert isinstance(make_controller_optimizer([torch.nn.Parameter(torch.zeros(1))], "adam",
                                                1e-3, tf_adam=True), TFAdam)


def test_the_cnn_search_builds_tf_adam_with_beta1_0_and_eps_1e_3():
    from api.spaces.enas_macro.network import EnasMacroSupernet
    from searching.enas.cnn_controllers import MacroController
    from searching.enas.reinforce import TFAdam
    from searching.oneshot.trainer import OneShotConfig

    method = _macro_method(MacroController(lstm_size=8, num_layers=2))
    net = EnasMacroSupernet(C=4, layers=2)
    method.bind(net, torch.optim.SGD(net.parameters(), lr=0.1), OneShotConfig(space="enas-macro"))
    opt = method.c_optimizer
    assert isinstance(opt, TFAdam)
    assert (opt.defaults["beta1"], opt.defaults["beta2"], opt.defaults["eps"]) == (0.0, 0.999,
                                                                                   1e-3)


def test_momentum_is_tf_get_train_ops_nesterov():
    """TF ``get_train_ops`` ``"momentum"``: ``MomentumOptimizer(lr, 0.9, use_nesterov=True)``:
    ``a = 0.9 a + g``; ``w -= lr (g + 0.9 a)``."""
    from searching.enas.reinforce import make_controller_optimizer

    rng = np.random.default_rng(1)
    w0 = rng.normal(size=5)
    grads = [rng.normal(size=5) for _ in range(4)]
    w, a = w0.copy(), np.zeros(5)
    for g in grads:
        a = 0.9 * a + g
        w = w - 0.05 * (g + 0.9 * a)
    got = _run(lambda ps: make_controller_optimizer(ps, "momentum", 0.05), w0, grads)
    np.testing.assert_allclose(got, w, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ child gradient clip
def _tf_clip_by_norm(g, bound):
    return g * bound / max(np.sqrt((g * g).sum()), bound)


def test_child_clip_modes():
    """TF ``get_train_ops`` ``clip_mode="norm"`` (what ``main.py`` passes) appends the
    unclipped gradient, so ``tf`` leaves gradients alone; ``norm`` is ``tf.clip_by_norm`` of
    each tensor; ``global`` is ``tf.clip_by_global_norm``."""
    from searching.enas.cnn_method import clip_gradients

    rng = np.random.default_rng(2)
    raw = [rng.normal(scale=s, size=n) for s, n in ((3.0, 7), (0.1, 4), (2.0, 9))]

    def clipped(mode):
        ps = [torch.nn.Parameter(torch.zeros(len(g), dtype=torch.float64)) for g in raw]
        for p, g in zip(ps, raw):
            p.grad = torch.tensor(g)
        clip_gradients(ps, mode, 1.5)
        return [p.grad.numpy() for p in ps]

    for got, g in zip(clipped("tf"), raw):
        np.testing.assert_array_equal(got, g)
    for got, g in zip(clipped("norm"), raw):
        np.testing.assert_allclose(got, _tf_clip_by_norm(g, 1.5), rtol=1e-6)
    total = math.sqrt(sum((g * g).sum() for g in raw))
    for got, g in zip(clipped("global"), raw):
        np.testing.assert_allclose(got, g * 1.5 / total, rtol=1e-6)


def test_cnn_defaults_follow_tf_and_flags_reach_the_method():
    from searching.enas.cnn_search import resolve_cnn_args
    from searching.enas.config import build_parser

    base = ["--network_type", "cnn", "--save", "/nonexistent/enas-test", "--seed", "1"]
    a = resolve_cnn_args(build_parser().parse_args(base))
    assert (a.child_clip_mode, a.child_train_aux_head, a.macro_branches, a.macro_reward_bn) == \
        ("tf", 0, "all", "running")
    a = build_parser().parse_args([*base, "--child_clip_mode", "global", "--macro_branches",
                                   "sampled", "--macro_reward_bn", "batch",
                                   "--child_train_aux_head", "1"])
    assert (a.child_clip_mode, a.macro_branches, a.macro_reward_bn, a.child_train_aux_head) == \
        ("global", "sampled", "batch", 1)
    for flag, value in (("--child_clip_mode", "clip"), ("--macro_branches", "two"),
                        ("--macro_reward_bn", "eval"), ("--shared_bn_init", "zeros")):
        with pytest.raises(UserError, match=flag.lstrip("-")):
            build_parser().parse_args([flag, value])


# ------------------------------------------------------------------ micro auxiliary head
def _macro_method(controller, space="macro", **kw):
    from searching.enas.cnn_method import EnasCNN

    args = dict(child_lr_max=0.05, child_lr_min=0.0005, child_t0=10, child_t_mul=2,
                aux_weight=0.4 if space == "micro" else 0.0, controller_optim="adam",
                controller_lr=1e-3, controller_lr_cosine=False, controller_lr_max=None,
                controller_lr_min=1e-4, controller_steps=1, num_aggregate=1,
                entropy_coeff=1e-4, baseline_decay=0.99, skip_weight=0.0,
                controller_grad_clip=0.0, derive_num_sample=1, seed=0)
    args.update(kw)
    return EnasCNN(controller, space, **args)


@pytest.mark.parametrize("train_aux", [False, True])
def test_micro_aux_head_is_frozen_as_tf_unless_asked(train_aux):
    """TF ``micro_child.py`` ``_build_train`` trains the variables whose names lack
    ``aux_head``: the head's weights stay at their initial values, its loss still reaches the
    network below it."""
    from api.spaces.enas_micro.supernet import EnasMicroSupernet
    from searching.enas.cnn_controllers import MicroController
    from searching.oneshot.trainer import OneShotConfig

    torch.manual_seed(0)
    net = EnasMicroSupernet(num_classes=10, C=4, layers=1, auxiliary=True, keep_prob=1.0)
    ctrl = MicroController(lstm_size=8)
    method = _macro_method(ctrl, "micro", train_aux_head=train_aux)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=2e-4)
    method.bind(net, opt, OneShotConfig(space="enas-micro"))
    aux_before = [p.detach().clone() for p in net.aux_head.parameters()]
    rest_before = [p.detach().clone() for n, p in net.named_parameters() if "aux_head" not in n]
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    record = method.step(net, (x, y), None, 0, 0)
    assert math.isfinite(float(record["train_loss"]))
    aux_moved = any(not torch.equal(a, p) for a, p in zip(aux_before, net.aux_head.parameters()))
    assert aux_moved == train_aux
    rest_moved = any(not torch.equal(a, p) for a, p in zip(
        rest_before, (p for n, p in net.named_parameters() if "aux_head" not in n)))
    assert rest_moved


# ------------------------------------------------------------------ macro BN statistics
def _branch_bn_means(net):
    return [[torch.cat([m.running_mean.clone() for m in b.modules()
                        if isinstance(m, torch.nn.BatchNorm2d)]) for b in layer]
            for layer in net.layer_branches]


@pytest.mark.parametrize("branches", ["all", "sampled", "last"])
def test_macro_branches_statistics_and_gradients(branches):
    """``all``: every branch's BN sees the batch (TF builds all six branches outside its
    ``tf.case``), the sampled one alone gets a gradient; ``sampled``: only the sampled
    branch's statistics move; ``last``: TF ``general_child.py`` as it runs, its
    ``lambda: y`` closures all returning the last branch (max pool)."""
    from api.spaces.enas_macro.arch import make_macro
    from api.spaces.enas_macro.network import EnasMacroSupernet

    torch.manual_seed(0)
    net = EnasMacroSupernet(C=4, layers=3, keep_prob=1.0, branches=branches)
    arch = make_macro([1, 3, 1, 0, 0, 1])  # ops 1, 3, 0; skips [1], [0, 1]
    before = _branch_bn_means(net)
    net.train()
    x = torch.randn(4, 3, 8, 8)
    out = net(x, arch)
    out.sum().backward()
    after = _branch_bn_means(net)
    fed = [5, 5, 5] if branches == "last" else list(arch.ops)
    for k in range(3):
        for op in range(6):
            moved = not torch.equal(before[k][op], after[k][op])
            assert moved == (branches == "all" or op == fed[k]), (k, op)
            grads = [p.grad for p in net.layer_branches[k][op].parameters()]
            assert all((g is not None) == (op == fed[k]) for g in grads), (k, op)
    if branches == "last":
        ref = EnasMacroSupernet(C=4, layers=3, keep_prob=1.0, branches="sampled")
        ref.load_state_dict(net.state_dict())
        ref.train()
        with torch.no_grad():
            torch.testing.assert_close(net(x, arch), ref(x, make_macro([5, 5, 1, 5, 0, 1])))
    with pytest.raises(ValueError):
        EnasMacroSupernet(C=4, layers=3, branches="some")


def test_macro_reward_with_batch_statistics_leaves_the_running_ones():
    from api.spaces.enas_macro.arch import make_macro
    from api.spaces.enas_macro.network import EnasMacroSupernet
    from searching.enas.cnn_method import batch_statistics

    torch.manual_seed(0)
    net = EnasMacroSupernet(C=4, layers=2, keep_prob=0.5)
    arch = make_macro([2, 4, 1])
    x = torch.randn(5, 3, 8, 8)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    with torch.no_grad(), batch_statistics(net):
        got = net(x, arch)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert not net.training and all(not m.training for m in net.modules())
    ref = EnasMacroSupernet(C=4, layers=2, keep_prob=1.0)  # training BN, no dropout
    ref.load_state_dict(state)
    ref.train()
    with torch.no_grad():
        torch.testing.assert_close(got, ref(x, arch))
        net.eval()
        assert not torch.allclose(got, net(x, arch))  # the running statistics differ


def test_macro_reward_mode_reaches_the_accuracy_forward():
    from api.spaces.enas_macro.network import EnasMacroSupernet
    from searching.enas.cnn_controllers import MacroController
    from searching.oneshot.trainer import OneShotConfig

    torch.manual_seed(0)
    net = EnasMacroSupernet(C=4, layers=2, keep_prob=1.0)
    arch = MacroController(lstm_size=8, num_layers=2).sample(torch.Generator()).arch
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    seen = {}
    for mode in ("running", "batch"):
        method = _macro_method(MacroController(lstm_size=8, num_layers=2), reward_bn=mode)
        method.bind(net, torch.optim.SGD(net.parameters(), lr=0.1),
                    OneShotConfig(space="enas-macro"))
        hook = net.stem[1].register_forward_hook(
            lambda m, i, o, mode=mode: seen.__setitem__(mode, m.training))
        method._accuracy(net, arch, (x, y))
        hook.remove()
    assert seen == {"running": False, "batch": True}


# ------------------------------------------------------------------ RNN (carpedm20)
def _carpedm20_lrs(lr, decay, after, epochs):
    """carpedm20 ``Trainer.train``: each epoch trains at the optimizer's lr; after epoch
    ``e >= shared_decay_after`` it is set to ``lr * decay ** max(e - after + 1, 0)``."""
    out, current = [], lr
    for epoch in range(epochs):
        out.append(current)
        if epoch >= after:
            current = lr * decay ** max(epoch - after + 1, 0)
    return out


@pytest.mark.parametrize("after", [15, 15.5, 0, 3])
def test_shared_lr_decay_starts_as_carpedm20s(after):
    from searching.enas.rnn_method import EnasRNN, EnasRNNSettings

    method = EnasRNN(EnasRNNSettings(shared_decay=0.96, shared_decay_after=after), seed=0)
    want = _carpedm20_lrs(20.0, 0.96, after, 22)
    got = [method.epoch_lr(e, 20.0) for e in range(22)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    if after == 15:
        assert got[15] == 20.0 and got[16] == pytest.approx(20.0 * 0.96)


def _tiny_rnn(controller_steps=7, bptt=3):
    from api.spaces.enas_rnn.supernet import EnasRNNSupernet
    from searching.enas.rnn_method import EnasRNN, EnasRNNSettings
    from searching.oneshot.trainer import OneShotConfig

    torch.manual_seed(0)
    net = EnasRNNSupernet(40, emsize=6, nhid=6, num_nodes=3)
    method = EnasRNN(EnasRNNSettings(num_blocks=3, controller_hid=8,
                                     controller_max_step=controller_steps, bptt=bptt,
                                     max_epoch=1), seed=0)
    method.bind(net, torch.optim.SGD(net.parameters(), lr=1.0), OneShotConfig(space="enas-rnn"))
    return net, method


def test_reward_windows_wrap_and_reset_the_hidden_state_as_carpedm20():
    """carpedm20 ``train_controller``: ``valid_idx = (valid_idx + bptt) % (rows - 1)`` and a
    fresh hidden state whenever that wraps."""
    from searching.enas.rnn_method import next_valid_pos

    rows, bptt, steps = 11, 3, 7
    want_pos, idx = [], 0
    want_fresh = []
    fresh = True
    for _ in range(steps):
        want_pos.append(idx)
        want_fresh.append(fresh)
        prev, idx = idx, (idx + bptt) % (rows - 1)
        fresh = prev > idx
    net, method = _tiny_rnn(steps, bptt)
    # row r of the source holds tokens 2r, 2r+1: a window's first token names its row
    source = torch.arange(2 * rows).view(rows, 2)
    calls = []
    original = method._valid_loss

    def spy(net_, x, y, hidden):
        calls.append((int(x[0, 0]) // 2, bool((hidden == 0).all())))
        return original(net_, x, y, hidden)

    method._valid_loss = spy
    method.epoch_end(net, SimpleNamespace(data=SimpleNamespace(search=source)), 0)
    assert [c[0] for c in calls] == want_pos == [0, 3, 6, 9, 2, 5, 8]
    assert [c[1] for c in calls] == want_fresh
    assert [next_valid_pos(p, bptt, rows) for p in (0, 9, 8)] == [(3, False), (2, True),
                                                                 (1, True)]


def test_cell_output_bn_starts_as_carpedm20s():
    """carpedm20 ``RNN.reset_parameters`` draws every parameter U(-0.025, 0.025), the cell
    output's BatchNorm1d scale and shift included."""
    from api.spaces.enas_rnn.supernet import EnasRNNSupernet
    from searching.enas.config import build_parser

    torch.manual_seed(0)
    bn = EnasRNNSupernet(30, emsize=64, nhid=64, num_nodes=2).cell.bn
    for p in (bn.weight, bn.bias):
        assert p.abs().max() <= 0.025 and p.abs().min() > 0 and p.std() > 0.005
    bn = EnasRNNSupernet(30, emsize=8, nhid=8, num_nodes=2, bn_init="ones").cell.bn
    assert torch.equal(bn.weight, torch.ones(8)) and torch.equal(bn.bias, torch.zeros(8))
    with pytest.raises(UserError, match="shared_bn_init"):
        EnasRNNSupernet(30, emsize=8, nhid=8, num_nodes=2, bn_init="zeros")
    assert build_parser().parse_args([]).shared_bn_init == "uniform"
    assert build_parser().parse_args(["--shared_bn_init", "ones"]).shared_bn_init == "ones"


def test_unused_child_weights_decay_and_keep_momentum_as_tf():
    """TF ``get_train_ops`` adds ``l2 * sum(w^2)`` over every child variable, so a branch the
    sampled architecture leaves unused still gets the gradient ``2 l2 w``, and Nesterov
    momentum (``a = 0.9 a + g``, ``w -= lr (g + 0.9 a)``) moves it."""
    from api.spaces.enas_macro.arch import make_macro
    from api.spaces.enas_macro.network import EnasMacroSupernet
    from searching.enas.cnn_method import child_step

    torch.manual_seed(0)
    net = EnasMacroSupernet(C=4, layers=2, keep_prob=1.0, branches="sampled").double()
    l2, lr = 2.5e-4, 0.1
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True,
                          weight_decay=2 * l2)
    unused = net.layer_branches[0][3].out[0].weight
    w = unused.detach().clone().numpy()
    a = np.zeros_like(w)
    x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (4,))
    for _ in range(3):
        child_step(net, opt, x, y, make_macro([0, 1, 1]), 0.0, "tf", 5.0)
        g = 2 * l2 * w
        a = 0.9 * a + g
        w = w - lr * (g + 0.9 * a)
    np.testing.assert_allclose(unused.detach().numpy(), w, rtol=1e-12, atol=0)


def test_macro_bn_cost_probe_times_every_mode():
    from bench.enas_macro_bn import measure

    r = measure(batch=2, C=2, layers=2, repeats=1, warmup=0)
    assert set(r["child_step_s"]) == {"all", "sampled", "last"}
    assert set(r["reward_forward_s"]) == {"running", "batch"}
    assert all(v > 0 for d in (r["child_step_s"], r["reward_forward_s"]) for v in d.values())


@pytest.mark.slow
def test_cnn_flags_reach_the_recorded_settings(tmp_path, cifar_root, capsys):
    """The new CNN flags travel through main.py into the settings a resumed run checks."""
    from tests.searching.enas.test_enas_cnn import MACRO, search

    root = tmp_path / "macro"
    search(capsys, root, cifar_root, MACRO, epochs=1,
           extra=("--macro_branches", "sampled", "--macro_reward_bn", "batch",
                  "--child_clip_mode", "global"))
    settings = torch.load(root / "checkpoint.pt", weights_only=False)["settings"]
    assert settings["supernet"]["branches"] == "sampled"
    method = settings["method_settings"]
    assert (method["reward_bn"], method["clip_mode"], method["train_aux_head"]) == \
        ("batch", "global", False)
