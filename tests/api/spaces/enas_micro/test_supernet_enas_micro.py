"""The ENAS micro weight-sharing child network (api/spaces/enas_micro/supernet.py)."""
from __future__ import annotations

import torch

from api.spaces import get_space
from api.spaces.enas_micro.arch import make_arch
from api.spaces.enas_micro.supernet import EnasMicroSupernet

# node n: [idx1, op1, idx2, op2]; normal uses every op and leaves input 1 loose
NORMAL = [0, 0, 0, 1, 2, 2, 0, 3, 3, 4, 2, 0, 4, 1, 3, 2, 0, 4, 5, 3]
REDUCE = [1, 1, 0, 0, 2, 3, 1, 4, 0, 2, 3, 1, 4, 0, 4, 0, 5, 2, 5, 1]
ARCH = make_arch(NORMAL + REDUCE)


def official_param_count(C: int, layers: int, classes: int, nodes: int = 5) -> int:
    """Trainable variables of the official micro_child search network (fixed_arc None),
    aux head excluded, from the variable shapes of ``_model``/``_enas_layer``/``_enas_conv``:
    BN adds scale + offset per channel."""
    total = 27 * 3 * C + 2 * 3 * C                          # stem conv + BN
    pool = [layers // 3, 2 * (layers // 3) + 1]
    shapes = [(3 * C, 0), (3 * C, 0)]                        # (channels, reductions so far)
    c, red = C, 0
    for layer in range(layers + 2):
        if layer in pool:
            c, red = 2 * c, red + 1
            total += shapes[1][0] * (c // 2) * 2 + 2 * c     # factorized reduction
            shapes = [shapes[1], (c, red)]
        (c0, r0), (c1, _) = shapes
        if r0 != red:
            total += c0 * (c // 2) * 2 + 2 * c               # calibrate: factorized reduction
        elif c0 != c:
            total += c0 * c + 2 * c                          # calibrate: 1x1 conv + BN
        if c1 != c:
            total += c1 * c + 2 * c
        for n in range(nodes):
            for k in (3, 5):                                 # x and y, 2 stacks each
                total += 2 * 2 * (n + 2) * (k * k * c + c * c + 2 * c)
        total += (nodes + 2) * c * c + 2 * c                 # final_conv + BN
        shapes = [shapes[1], (c, red)]
    return total + c * classes                               # fc (no bias)


def test_param_count_matches_the_official_variables():
    net = EnasMicroSupernet(num_classes=10, C=20, layers=6)
    no_aux = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("aux_head"))
    assert no_aux == official_param_count(20, 6, 10) == 5373140
    assert net.pool_layers == [2, 5] and net.aux_index == 6 and len(net.cells) == 8


def test_shapes_and_space_hook(one_thread):
    torch.manual_seed(0)
    net = get_space("enas-micro").supernet("cifar10", C=4, layers=3)
    assert isinstance(net, EnasMicroSupernet)
    x = torch.randn(3, 3, 32, 32)
    net.train()
    logits, aux = net(x, ARCH)
    assert logits.shape == aux.shape == (3, 10)
    net.eval()
    assert net(x, ARCH).shape == (3, 10)
    small = get_space("enas-micro").supernet("cifar100", C=4, layers=1, auxiliary=False)
    assert small(x, ARCH).shape == (3, 100)


def test_only_sampled_ops_get_gradients(one_thread):
    torch.manual_seed(0)
    net = EnasMicroSupernet(num_classes=10, C=4, layers=1, auxiliary=False, keep_prob=1.0)
    out = net(torch.randn(4, 3, 16, 16), ARCH)
    out.square().sum().backward()
    for layer, cell in enumerate(net.cells):
        arc = REDUCE if layer in net.pool_layers else NORMAL
        for n in range(5):
            for s in range(2):
                idx, op = arc[4 * n + 2 * s], arc[4 * n + 2 * s + 1]
                slot = net.cells[layer].slots[n][s]
                for k, conv in ((0, slot.sep3), (1, slot.sep5)):
                    for p in conv.parameters():
                        if op != k:
                            assert p.grad is None
                            continue
                        g = p.grad.flatten(1).abs().sum(1)
                        assert g[idx] > 0
                        assert torch.all(g[torch.arange(len(g)) != idx] == 0)
        used = {arc[4 * n] for n in range(5)} | {arc[4 * n + 2] for n in range(5)}
        rows = cell.final_w.grad.flatten(1).abs().sum(1)
        for i in range(7):
            assert (rows[i] > 0) == (i not in used)


def test_same_seed_same_network_and_drop_path(one_thread):
    def build():
        torch.manual_seed(3)
        return EnasMicroSupernet(num_classes=10, C=4, layers=1, auxiliary=False,
                                 keep_prob=1.0, drop_path_keep_prob=0.5)
    a, b = build(), build()
    x = torch.randn(8, 3, 16, 16)
    a.eval(), b.eval()
    assert torch.equal(a(x, ARCH), b(x, ARCH))
    a.train()
    torch.manual_seed(1)
    y1 = a(x, ARCH)
    y2 = a(x, ARCH)
    assert not torch.allclose(y1, y2)     # drop-path draws
    a.step_ratio = 0.0                    # ENAS's schedule: no drop at the first step
    assert torch.allclose(a(x, ARCH), a(x, ARCH))
