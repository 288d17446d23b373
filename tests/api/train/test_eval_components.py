"""The small shared pieces of the final trainings: optimizer, schedule, EMA, metrics, augmentation,
checkpoint RNG state, model-spec resolution and the RNN parameter count."""
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from api.train.augment import cutout, random_crop, random_flip
from api.train.checkpoint import capture_rng, restore_rng
from api.train.ema import ModelEma
from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.spaces.dag.graph_io import load_graph
from api.train.metrics import topk_accuracy
from api.spaces.autoshrink_cnn.model_spec import CIFAR_BASE, IMAGENET_BASE, ModelSpec, resolve_network
from api.spaces.autoshrink_cnn.network import NetworkSpec
from api.train.optim import RMSpropTF, WarmupCosineLR, weight_decay_groups
from api.spaces.autoshrink_rnn.cost import rnn_lm_params


def test_rmsprop_tf_matches_the_tf_update():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5))
    ref = w.detach().clone()
    ms, mom = torch.ones(5), torch.zeros(5)
    opt = RMSpropTF([w], lr=0.1, decay=0.9, momentum=0.9, eps=1.0, weight_decay=0.01)
    for _ in range(4):
        g = torch.randn(5)
        w.grad = g.clone()
        opt.step()
        g = g + 0.01 * ref                     # coupled L2, as a TF loss term
        ms = 0.9 * ms + 0.1 * g * g            # ms starts at 1 in TF
        mom = 0.9 * mom + 0.1 * g / torch.sqrt(ms + 1.0)   # eps inside the sqrt, lr inside mom
        ref = ref - mom
    torch.testing.assert_close(w.detach(), ref)


def test_weight_decay_skips_depthwise_bn_and_bias():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.BatchNorm2d(4), nn.Conv2d(4, 8, 1),
                          nn.Flatten(), nn.Linear(8, 2))
    decay, no_decay = weight_decay_groups(model, 8e-5)
    assert {id(p) for p in decay["params"]} == {id(model[2].weight), id(model[4].weight)}
    assert decay["weight_decay"] == 8e-5 and no_decay["weight_decay"] == 0.0
    decay, _ = weight_decay_groups(model, 3e-4, skip_depthwise=False)
    assert id(model[0].weight) in {id(p) for p in decay["params"]}


def test_warmup_cosine_and_resume_follows_current_schedule():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineLR(opt, total_steps=10, warmup_steps=2)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(10):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    assert lrs[6] == pytest.approx(0.5) and lrs[10] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))
    fresh = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    longer = WarmupCosineLR(fresh, total_steps=20, warmup_steps=2)
    longer.load_state_dict(sched.state_dict())  # --resume with more epochs stretches the cosine
    assert fresh.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 18)))


def test_ema_tracks_weights_and_copies_int_buffers():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = ModelEma(model, decay=0.999)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 5
    ema.update(model)  # first update: decay min(0.999, 2/11)
    w_ema, w = ema.module[0].weight, model[0].weight
    assert torch.allclose(w_ema, w - 1.0 * 2 / 11, atol=1e-6)
    assert int(ema.module[1].num_batches_tracked) == 5
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_topk_accuracy_counts_and_small_class_counts():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    acc = topk_accuracy(logits, torch.tensor([1, 2, 0]), ks=(1, 5))
    assert acc[1] == pytest.approx(1 / 3) and acc[5] == 1.0  # k > classes counts every sample


def test_device_augmentation_shapes_and_semantics():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    crop = random_crop(x, 2, g)
    assert crop.shape == x.shape
    # every crop is a window of the zero-padded image: rows are consecutive original rows or 0
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for n in range(2):
        found = any(torch.equal(crop[n], padded[n, :, i:i + 8, j:j + 8])
                    for i in range(5) for j in range(5))
        assert found
    flipped = random_flip(x, torch.Generator().manual_seed(1))
    for n in range(2):
        assert torch.equal(flipped[n], x[n]) or torch.equal(flipped[n], x[n].flip(2))
    holed = cutout(x, 4, torch.Generator().manual_seed(2))
    zeros = (holed == 0).all(dim=1).sum(dim=(1, 2))
    assert ((zeros > 0) & (zeros <= 16)).all()
    assert torch.equal(holed[holed != 0], x[holed != 0])


def test_rng_state_round_trip():
    state = capture_rng()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def search_graph(activation="swish"):
    """A graph-best as the CNN search writes it: the proxy network under settings['network']."""
    proxy = NetworkSpec(scale=[1, 2, 4], pool=[1, 2, 2], replicate=[1, 1, 1],
                        activation=activation)
    ops = ["input", "SepConv3x3", "Conv1x1", "SepConv3x3", "Conv1x1"]
    g = CellGraph.complete(5, ops, space="cnn",
                           settings={"space": "cnn", "network": proxy.to_dict(), "protocol": "v3"})
    return g.remove_edge(0, 4).remove_edge(1, 3)


def test_resolve_network_sources():
    # a search graph: the trainer's macro network, only the proxy's activation carries over
    net = resolve_network(search_graph(), IMAGENET_BASE, {})
    assert net.scale == [0.5, 1, 2, 4, 8] and net.stem_stride == 2 and net.activation == "swish"
    net = resolve_network(search_graph(), CIFAR_BASE, {"replicate": [1, 1, 1]},
                          inherit=("activation",))
    assert net.stem_stride == 1 and net.replicate == [1, 1, 1] and net.activation == "swish"
    # a preset proposes its whole network; on CIFAR only its activation is kept
    b = load_graph("shrinkcnn-b")
    assert resolve_network(b, IMAGENET_BASE, {}).head_channels == 1280
    cifar_b = resolve_network(b, CIFAR_BASE, {}, inherit=("activation",))
    assert cifar_b.activation == "swish" and cifar_b.head_channels == 0
    with pytest.raises(UserError, match="rnn"):
        resolve_network(load_graph("shrinkrnn"), CIFAR_BASE, {})


def test_model_spec_round_trip_and_bad_files():
    spec = ModelSpec(search_graph(), NetworkSpec(**dict(CIFAR_BASE, replicate=[1, 1, 1])), 4e-5)
    again = ModelSpec.from_dict(spec.to_dict())
    assert again.graph == spec.graph and again.network == spec.network
    with pytest.raises(UserError, match="not an AutoShrink model spec"):
        ModelSpec.from_dict({"format": "something-else"})
    bad_op = CellGraph([[0, 1], [0, 0]], ["input", "NoSuchOp"])
    with pytest.raises(UserError, match="NoSuchOp"):
        ModelSpec(bad_op, NetworkSpec()).build()


def test_shrinkrnn_params_within_5_percent_of_paper():
    g = load_graph("shrinkrnn")
    assert g.num_edges == 12
    params = rnn_lm_params(g, ntoken=10000, ninp=745, nhid=745)
    assert params == 10000 * 745 + 1490 * 1490 + 12 * 745 * 1490 + 10000
    assert abs(params - 24e6) / 24e6 < 0.05
