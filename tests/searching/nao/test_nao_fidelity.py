"""NAO-WS against the TF release (renqianluo/NAO ``NAO-WS/cnn``), re-derived by hand in float64:
the controller's optimizer step (``controller.py::get_train_ops``), its learning rate, the
decoder (``decoder/decoder.py``: TF's AttentionWrapper over an LSTMCell with normed Bahdanau
attention), the search network's settings (``train_search.sh`` + ``model_search.py``) and the
pool files (``train_search.py::train``)."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from api.errors import UserError
from searching.nao.controller import (ControllerConfig, NAOController, controller_lr,
                                      make_optimizer)
from searching.nao.optimize import train_controller
from searching.nao.pool import (PoolEntry, arch_to_seq, random_archs, read_arch_pool,
                                read_perf, read_pool, write_next_pool, write_pool)

TINY = dict(emb_size=8, hidden_size=16, mlp_hidden_size=16, encoder_dropout=0.0)


# ---------------------------------------------------------------------- optimizer (Adam, l2)
def test_controller_step_is_tf_adam_on_the_clipped_gradient_of_loss_plus_l2(one_thread):
    """TF: total = w*MSE + (1-w)*CE + wd * sum(l2_loss(v)); clip_by_global_norm; then
    ``tf.train.AdamOptimizer(lr)`` with TF's defaults (beta1 0.9, beta2 0.999, eps 1e-8)."""
    torch.manual_seed(0)
    cfg = ControllerConfig(batch_size=8, grad_bound=0.05, weight_decay=1e-2, **TINY)
    model = NAOController(cfg).double()
    ref = copy.deepcopy(model)
    opt = make_optimizer(model)
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8
    assert group["weight_decay"] == 0 and not group["amsgrad"]
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in group["params"]) == sorted(
        n for n, p in model.named_parameters() if "bias_hh" not in n)

    g = torch.Generator().manual_seed(4)
    archs = random_archs(8, g)
    targets = [k / 7 for k in range(8)]
    train_controller(model, opt, archs, targets, 1, g, 0, symmetry=False)  # one batch

    # the reference: the whole pool is the batch (means do not depend on the order)
    x = torch.tensor([arch_to_seq(a) for a in archs])
    y = torch.tensor(targets, dtype=torch.float64)
    params = [p for n, p in ref.named_parameters() if "bias_hh" not in n]
    ref.train()
    pred = ref.predict(x)
    log_probs = ref.decode_teacher(ref.encode(x), x)
    mse = ((pred - y) ** 2).mean()
    ce = -log_probs.gather(-1, x.unsqueeze(-1)).mean()
    l2 = sum((p ** 2).sum() / 2 for p in params)
    total = 0.8 * mse + 0.2 * ce + cfg.weight_decay * l2
    grads = torch.autograd.grad(total, params)
    norm = torch.sqrt(sum((gr ** 2).sum() for gr in grads))
    assert norm > cfg.grad_bound  # the clip is engaged
    clipped = [gr * cfg.grad_bound / norm for gr in grads]
    for (name, p), gr in zip([(n, p) for n, p in model.named_parameters()
                              if "bias_hh" not in n], clipped):
        assert torch.allclose(p.grad, gr, rtol=1e-9, atol=1e-15), name
    # TF's first Adam step: lr * sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + eps); torch puts
    # eps after the bias correction, i.e. lr * g / (|g| + eps) against TF's
    # lr * g / (|g| + eps / sqrt(1 - b2)): apart by at most lr * 3.2e-7 / |g|
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, cfg.lr
    for (name, p), p0, gr in zip([(n, p) for n, p in model.named_parameters()
                                  if "bias_hh" not in n], params, clipped):
        m, v = (1 - b1) * gr, (1 - b2) * gr ** 2
        tf_new = (p0 - lr * math.sqrt(1 - b2) / (1 - b1) * m / (v.sqrt() + eps)).detach()
        gap = (p.detach() - tf_new).abs()
        assert (gap <= lr * 3.2e-7 / gr.abs().clamp(min=1e-30) + 1e-15).all(), name


def test_controller_learning_rate_decays_only_under_sgd(one_thread):
    """TF's ``get_train_ops``: ``tf.constant(lr)`` for Adam; the staircase
    ``exponential_decay`` after ``start_decay_step`` only in the ``sgd`` branch."""
    adam, sgd = ControllerConfig(), ControllerConfig(optimizer="sgd")
    assert [controller_lr(adam, s) for s in (0, 99, 1100, 10 ** 5)] == [1e-3] * 4
    assert controller_lr(sgd, 1099) == 1e-3 and math.isclose(controller_lr(sgd, 1100), 9e-4)
    assert math.isclose(controller_lr(sgd, 4100), 1e-3 * 0.9 ** 4)
    assert type(make_optimizer(NAOController(ControllerConfig(optimizer="sgd", **TINY)))) \
        is torch.optim.SGD
    with pytest.raises(UserError):
        NAOController(ControllerConfig(optimizer="rmsprop"))
    # four rounds of the TF defaults (1,000 pools of 100 -> 10,000 steps each) later
    model = NAOController(ControllerConfig(batch_size=4, **TINY))
    opt = make_optimizer(model)
    g = torch.Generator().manual_seed(0)
    train_controller(model, opt, random_archs(4, g), [0.0, 0.3, 0.6, 1.0], 1, g, 40_000)
    assert opt.param_groups[0]["lr"] == 1e-3


# ---------------------------------------------------------------------- decoder
def tf_decoder(model: NAOController, outputs: torch.Tensor, inputs=None):
    """decoder.py's decoder re-derived: AttentionWrapper(LSTMCell(h), BahdanauAttention(h,
    memory=encoder outputs, normalize=True), attention_layer_size=None, output_attention=False):
    cell input = [embedding(previous token); previous attention] (zero at first), the LSTM
    (gates i, j, f, o; forget bias 1) starts from (arch_emb, arch_emb), the alignments come
    from the new cell output, the attention is their mix of the encoder outputs, and the
    logits project the cell output. ``inputs`` None: greedy, TF's masked softmax argmax."""
    H = model.config.hidden_size
    emb = outputs.mean(1)
    emb = emb / emb.norm(dim=-1, keepdim=True)
    c, h = emb, emb
    attention = torch.zeros_like(emb)
    cell = model.dec_cell
    keys = outputs @ model.memory_layer.weight.T
    v = model.attn_v
    normed_v = model.attn_g * v / torch.sqrt((v ** 2).sum())
    token = torch.zeros(outputs.shape[0], dtype=torch.long)
    logits, tokens = [], []
    for t in range(40):
        if inputs is not None:  # teacher forcing: the given previous token
            token = inputs[:, t]
        x = torch.cat([model.dec_embedding.weight[token], attention], -1)
        z = x @ cell.weight_ih.T + h @ cell.weight_hh.T + cell.bias_ih
        i, f, j, o = z.split(H, -1)  # torch's row blocks: input, forget, cell, output
        c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(j)
        h = torch.sigmoid(o) * torch.tanh(c)
        score = (normed_v * torch.tanh(keys + (h @ model.query_layer.weight.T)[:, None]
                                      + model.attn_b)).sum(-1)
        align = torch.softmax(score, -1)
        attention = (align[:, :, None] * outputs).sum(1)
        step = h @ model.out.weight.T + model.out.bias
        logits.append(step)
        if inputs is None:  # MyDense: softmax, zero the invalid tokens, argmax
            probs = torch.softmax(step, -1)
            if t % 2 == 0:
                keep = torch.zeros(12)
                keep[1:t // 2 % 10 // 2 + 3] = 1
            else:
                keep = torch.cat([torch.zeros(7), torch.ones(5)])
            token = (probs * keep).argmax(-1)
            tokens.append(token)
    if inputs is None:
        return torch.stack(tokens, 1)
    return torch.log_softmax(torch.stack(logits, 1), -1)


def test_decoder_is_tf_normed_bahdanau_with_input_feeding(one_thread):
    torch.manual_seed(1)
    model = NAOController(ControllerConfig(**TINY)).double().eval()
    with torch.no_grad():  # away from the initialisation, so every term shows
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn_like(p))
    # the frozen forget-gate constant of both LSTMs: TF's forget_bias=1.0
    H = 16
    for lstm in (model.enc_rnn, model.dec_cell):
        bias_hh = dict(lstm.named_parameters())["bias_hh_l0" if lstm is model.enc_rnn
                                                 else "bias_hh"]
        assert not bias_hh.requires_grad
        assert torch.equal(bias_hh, torch.cat([torch.zeros(H), torch.ones(H),
                                               torch.zeros(2 * H)]).double())
    g = torch.Generator().manual_seed(5)
    x = torch.tensor([arch_to_seq(a) for a in random_archs(6, g)])
    outputs = model.encode(x)
    shifted = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)
    assert torch.allclose(model.decode_teacher(outputs, x), tf_decoder(model, outputs, shifted),
                          rtol=0, atol=1e-12)
    assert torch.equal(model.decode_greedy(outputs), tf_decoder(model, outputs))


def test_controller_initialisation_is_tfs(one_thread):
    """uniform(-0.1, 0.1) from the encoder's and decoder's variable scopes, zero biases, an
    orthogonal decoder-cell kernel, the normed attention's gain sqrt(1 / units)."""
    torch.manual_seed(2)
    model = NAOController()
    H = model.config.hidden_size
    for name, p in model.named_parameters():
        if name.startswith("dec_cell.weight"):
            continue
        if ("bias" in name and "hh" not in name) or name == "attn_b":
            assert torch.count_nonzero(p) == 0, name
        elif name == "attn_g":
            assert math.isclose(p.detach().item(), math.sqrt(1 / H), rel_tol=1e-6)
        elif "bias_hh" not in name:
            assert p.abs().max() <= 0.1 and p.abs().max() > 0.09, name
    kernel = torch.cat([model.dec_cell.weight_ih, model.dec_cell.weight_hh], 1).double()
    assert torch.allclose(kernel.T @ kernel, torch.eye(3 * H, dtype=torch.float64), atol=1e-5)


# ---------------------------------------------------------------------- search network
def test_search_network_settings_follow_tf_model_search():
    """train_search.sh passes --child_drop_path_keep_prob=0.60, but model_search.py's search
    layers (``_enas_layer``) never drop paths; ``get_train_ops`` adds l2 * sum(w**2) and its
    "norm" clip does not clip."""
    from searching.nao.train_search import build_parser, supernet_kwargs

    args = build_parser().parse_args([])
    assert supernet_kwargs(args)["drop_path_keep_prob"] == 1.0
    assert args.weight_decay == 2e-4
    assert args.grad_clip == 0.0  # the "norm" clip appends the unclipped gradient
    # l2 * sum(w**2) in the loss and SGD weight_decay 2 * l2: the same Nesterov step
    torch.manual_seed(3)
    w0 = torch.randn(5, dtype=torch.float64)
    data = torch.randn(5, dtype=torch.float64)
    l2 = 1e-4
    a = w0.clone().requires_grad_(True)
    opt_a = torch.optim.SGD([a], lr=0.05, momentum=0.9, nesterov=True)
    b = w0.clone().requires_grad_(True)
    opt_b = torch.optim.SGD([b], lr=0.05, momentum=0.9, nesterov=True,
                            weight_decay=args.weight_decay)
    for _ in range(3):
        opt_a.zero_grad()
        ((a * data).sum() ** 2 + l2 * (a ** 2).sum()).backward()
        opt_a.step()
        opt_b.zero_grad()
        ((b * data).sum() ** 2).backward()
        opt_b.step()
    assert torch.allclose(a, b, rtol=0, atol=1e-15)


def test_supernet_step_is_tfs_decay_of_every_weight_and_per_tensor_clip(one_thread):
    """TF's ``utils.get_train_ops``: l2 * sum(w**2) in the loss gives every weight a gradient
    at every step (the ops the sampled architecture leaves out decay, with Nesterov momentum,
    while unused); ``clip_mode="norm"`` as meant clips each tensor's gradient, decay
    included (TF's own code leaves it unclipped: ``--grad_clip 0``)."""
    from api.spaces.enas_micro.supernet import EnasMicroSupernet
    from searching.nao.method import TFWeightStep
    from searching.oneshot.trainer import sampled_arch_step

    torch.manual_seed(0)
    net = EnasMicroSupernet(10, C=4, layers=1, auxiliary=False, keep_prob=1.0,
                            input_size=8).double()
    arch = random_archs(1, torch.Generator().manual_seed(6))[0]
    x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randint(10, (4,))
    ref = copy.deepcopy(net)
    names = [n for n, _ in ref.named_parameters()]
    loss_grads = torch.autograd.grad(F.cross_entropy(ref(x, arch), y), list(ref.parameters()),
                                     allow_unused=True)
    unused = [n for n, gr in zip(names, loss_grads) if gr is None]
    assert unused
    w0 = {n: p.detach().clone() for n, p in net.named_parameters()}
    lr, m, wd, clip = 0.05, 0.9, 2e-4, 0.01
    for clip_norm, steps in ((0.0, 3), (clip, 1)):
        model = copy.deepcopy(net)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=m, nesterov=True,
                              weight_decay=wd)
        for _ in range(steps):
            sampled_arch_step(model, TFWeightStep(opt, clip_norm), x, y, arch, 0.0, 0.0)
        assert opt.param_groups[0]["weight_decay"] == wd
        params = dict(model.named_parameters())
        if clip_norm == 0:  # unused weights: gradient 2 * l2 * w alone, three steps
            assert any(not torch.equal(params[n].detach(), w0[n]) for n in unused)
            for n in unused:
                w, buf = w0[n], torch.zeros_like(w0[n])
                for _ in range(steps):
                    grad = wd * w
                    buf = m * buf + grad
                    w = w - lr * (grad + m * buf)
                assert torch.allclose(params[n].detach(), w, rtol=0, atol=1e-15), n
        else:  # one step of every weight: (loss gradient + decay) clipped per tensor
            clipped = 0
            for n, gr in zip(names, loss_grads):
                grad = (0 if gr is None else gr) + wd * w0[n]
                if grad.norm() > clip:
                    grad = grad * clip / grad.norm()
                    clipped += 1
                w = w0[n] - lr * (grad + m * grad)  # Nesterov's first step
                assert torch.allclose(params[n].detach(), w, rtol=0, atol=1e-13), n
            assert clipped > 0


# ---------------------------------------------------------------------- pool files
def official_lines(archs):
    """train_search.py's writer: ' '.join(map(str, arch[0] + arch[1])) a line."""
    return "".join(" ".join(map(str, a.normal + a.reduce)) + "\n" for a in archs)


def official_reader(text):
    """train_search.py's reader: splitlines, then utils.build_dag (split, two halves)."""
    out = []
    for line in text.splitlines():
        values = list(map(int, line.strip().split()))
        out.append((values[:len(values) // 2], values[len(values) // 2:]))
    return out


def test_pool_files_are_naos(tmp_path):
    g = torch.Generator().manual_seed(3)
    archs = random_archs(7, g)
    accs = [0.1, 0.5, 0.3, 0.9, 0.2, 0.4, 0.6]
    entries = [PoolEntry(a, m, p) for a, m, p in zip(archs, accs, [math.nan] * 6 + [0.25])]
    write_pool(tmp_path, entries, 30)
    best_first = [archs[k] for k in (3, 6, 1, 5, 2, 4, 0)]
    text = (tmp_path / "arch_pool").read_text()
    assert text == official_lines(best_first) and "\t" not in text
    assert official_reader(text) == [(list(a.normal), list(a.reduce)) for a in best_first]
    perf = (tmp_path / "arch_pool.perf").read_text()
    assert perf.splitlines() == [str(1 - m) for m in (0.9, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)]
    assert read_perf(tmp_path / "arch_pool.perf") == [1 - m for m in sorted(accs, reverse=True)]
    assert (tmp_path / "arch_pool.30").read_text() == text
    assert (tmp_path / "arch_pool.perf.30").read_text() == perf
    assert (tmp_path / "arch_pool.final").read_text() == official_lines(best_first[:5])
    scores = read_pool(tmp_path / "arch_pool.scores")
    assert [e.arch for e in scores] == best_first and [e.measured for e in scores] == sorted(
        accs, reverse=True)
    assert scores[1].predicted == 0.25 and math.isnan(scores[0].predicted)
    assert read_arch_pool(tmp_path / "arch_pool") == best_first
    # after an update NAO overwrites arch_pool with the next pool, in pool order
    write_next_pool(tmp_path, archs[:4])
    assert (tmp_path / "arch_pool").read_text() == official_lines(archs[:4])
    assert (tmp_path / "arch_pool.30").read_text() == text
    # an official file, with NAO's trailing newline and a blank line, reads back
    (tmp_path / "official").write_text(official_lines(archs) + "\n")
    assert read_arch_pool(tmp_path / "official") == archs


@pytest.mark.parametrize("text, message", [
    ("", "holds no architecture"),
    ("0 1 0 2\n", "line 1: an arch_pool architecture has 40 integers"),
    ("{good}\n{good} 3\n", "line 2:"),
    ("{bad}\n", "line 1:"),
])
def test_bad_arch_pool_files_are_one_error(tmp_path, text, message):
    g = torch.Generator().manual_seed(0)
    good = random_archs(1, g)[0].to_string()
    bad = good.replace(good.split()[0], "x", 1)
    path = tmp_path / "pool"
    path.write_text(text.format(good=good, bad=bad))
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as info:
        read_arch_pool(path)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="cannot read"):
        read_arch_pool(tmp_path / "missing")
