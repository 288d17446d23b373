import numpy as np
import pytest
import torch

from api.spaces.complexity import complexity, count_macs, flop_counter_macs
from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.spaces.dag.graph_io import load_graph
from api.spaces.autoshrink_cnn.network import NetworkSpec, build_network, make_divisible
from api.spaces.autoshrink_cnn.ops import PROTOCOLS, draw_ops

TINY = dict(scale=[0.5, 1], pool=[1, 2], replicate=[1, 2], image_size=16)


def test_shrinkcnn_reference_complexity():
    """The paper's ShrinkCNN: 3.601M params (3.636M with BN), 383.7M MACs at 224x224."""
    g = load_graph("shrinkcnn-a")
    spec = NetworkSpec.from_dict(g.settings)
    assert spec.node_channels() == [12, 24, 44, 88, 180]
    c = complexity(build_network(g, spec), (3, 224, 224))
    assert abs(c.params - 3.601e6) / 3.601e6 < 0.005
    assert abs(c.params_with_bn - 3.636e6) / 3.636e6 < 0.005
    assert abs(c.macs - 383.7e6) / 383.7e6 < 0.005


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_mac_counter_matches_flop_counter(protocol):
    g = CellGraph.complete(5, draw_ops(protocol, 5, np.random.default_rng(1))).remove_edge(1, 3)
    net = build_network(g, NetworkSpec(width=2, **TINY))
    assert count_macs(net, (3, 16, 16)) == flop_counter_macs(net, (3, 16, 16))


def test_only_active_nodes_are_built_and_outputs_are_leaves():
    g = CellGraph.complete(5, ["input"] + ["Conv1x1"] * 4).remove_edge(0, 1)
    net = build_network(g, NetworkSpec(**TINY))
    cell = net.cells[0].cells[0]
    assert sorted(int(k) for k in cell.ops) == g.active_nodes == [2, 3, 4]
    assert cell.out_channels == 8 * len(g.leaves)


def test_empty_cell_builds_and_trains(one_thread):
    """A cell with no edges passes its input through; the stem and classifier around it must
    still learn: on a tiny learnable batch (the class sets one channel's brightness) the loss
    falls and every parameter gets a finite, non-zero gradient."""
    g = CellGraph(np.zeros((4, 4), int), ["input", "Conv1x1", "Conv1x1", "Conv1x1"])
    torch.manual_seed(0)
    net = build_network(g, NetworkSpec(**TINY)).train()
    y = torch.arange(12) % 3
    x = 0.3 * torch.randn(12, 3, 16, 16)
    x[torch.arange(12), y] += 1.0
    assert net(x).shape == (12, 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for step in range(15):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for name, p in net.named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
                assert p.grad.abs().sum() > 0, name
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_pool_residual_width_and_swish():
    g = CellGraph.complete(4, ["input", "SepConv3x3", "Conv1x1", "SepConv3x3"])
    spec = NetworkSpec(width=3, activation="swish", **TINY)
    net = build_network(g, spec)
    feats = net.forward_features(torch.randn(2, 3, 16, 16))
    assert feats.shape[-1] == 8  # one pool of 2
    assert feats.shape[1] == 3 * 16  # width 3 cells, one leaf, node width 16 (scale 1)
    assert any(isinstance(m, torch.nn.SiLU) for m in net.modules())


def test_make_divisible_and_spec_validation():
    assert [make_divisible(16 * s * 1.4) for s in (0.5, 1, 2, 4, 8)] == [12, 24, 44, 88, 180]
    with pytest.raises(UserError, match="one value per stage"):
        NetworkSpec(scale=[1, 2], pool=[1], replicate=[1, 1])
    with pytest.raises(UserError):
        NetworkSpec(pool=[0, 2, 2])


def test_cpu_channels_last_guard():
    """Tiny channel counts into a strided 1x1 projection crash PyTorch's CPU channels_last."""
    from api.spaces.autoshrink_cnn.network import cpu_channels_last_ok

    g = CellGraph.complete(3, ["input", "Conv1x1", "Conv1x1"])
    tiny = NetworkSpec(scale=[0.25, 0.25], pool=[1, 2], replicate=[1, 1], stem_channels=4)
    assert not cpu_channels_last_ok(build_network(g, tiny))
    assert cpu_channels_last_ok(build_network(g, NetworkSpec()))
