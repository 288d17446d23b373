"""NAO's encoder-predictor-decoder and pool logic (searching/nao), no supernet: the
autoencoder reconstructs what it was trained on, the predictor ranks a toy target, generation
gives valid unseen architectures, the token form and symmetry swap are lossless."""
from __future__ import annotations

import math

import pytest
import torch

from api.errors import UserError
from api.spaces.enas_micro.arch import make_arch
from searching.nao.controller import (ControllerConfig, NAOController, controller_lr,
                                      make_optimizer)
from searching.nao.method import eval_points, sgdr_lr
from searching.nao.optimize import generate_archs, normalise, predict, train_controller
from searching.nao.pool import (PoolEntry, allowed_tokens, arch_to_seq, canonical,
                                pairwise_accuracy, random_archs, read_arch_pool, read_pool,
                                seq_to_arch, swap_branches, write_pool)

#: A smaller controller than NAO's (same code), so the tests train it in seconds.
SMALL = dict(emb_size=16, hidden_size=32, mlp_hidden_size=32)


def sep_share(arch) -> float:
    """Toy target: the share of separable convolutions among the 20 ops."""
    values = arch.to_list()
    return sum(values[k] in (0, 1) for k in range(1, 40, 2)) / 20


def test_token_form_round_trip_and_symmetry(one_thread):
    g = torch.Generator().manual_seed(0)
    archs = random_archs(50, g)
    assert len({canonical(a) for a in archs}) == 50  # distinct up to branch order
    for arch in archs:
        seq = arch_to_seq(arch)
        assert all(allowed_tokens(t)[0] <= v < allowed_tokens(t)[1] for t, v in enumerate(seq))
        assert seq_to_arch(seq) == arch
        swapped = seq_to_arch(swap_branches(seq, 2, 4))
        assert canonical(swapped) == canonical(arch)
        assert swap_branches(swap_branches(seq, 2, 4), 2, 4) == seq
    with pytest.raises(UserError):
        seq_to_arch([0] * 40)  # token 0 is the start symbol, not an input


@pytest.mark.slow
def test_autoencoder_reconstructs_its_training_architectures(one_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    archs = random_archs(8, g)
    cfg = ControllerConfig(lr=2e-2, batch_size=8, weight_decay=0.0, **SMALL)
    model = NAOController(cfg)
    opt = make_optimizer(model)
    figures = train_controller(model, opt, archs, normalise([sep_share(a) for a in archs])[0],
                               450, g, 0, symmetry=False)
    assert figures["controller_step"] == 450
    x = torch.tensor([arch_to_seq(a) for a in archs])
    assert torch.equal(model.reconstruct(x), x)


@pytest.mark.slow
def test_predictor_ranks_a_toy_target_on_unseen_architectures(one_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    train = random_archs(80, g)
    held_out = random_archs(60, g, exclude=train)
    cfg = ControllerConfig(lr=1e-2, batch_size=40, **SMALL)
    model = NAOController(cfg)
    opt = make_optimizer(model)
    targets, _, _ = normalise([sep_share(a) for a in train])
    train_controller(model, opt, train, targets, 150, g, 0)  # with symmetry augmentation
    acc = pairwise_accuracy([sep_share(a) for a in held_out], predict(model, held_out))
    assert acc > 0.75, acc  # chance is 0.5

    # generation: valid, unseen (up to branch order), as many as asked, and uphill
    new, lam = generate_archs(model, train[:20], 10, set(train), max_step=100)
    assert len(new) == 10 and 1 <= lam <= 100
    seen = {canonical(a) for a in train}
    assert len({canonical(a) for a in new}) == 10 and not seen & {canonical(a) for a in new}
    for arch in new:
        assert make_arch(arch.to_list()) == arch
    assert sum(map(sep_share, new)) / 10 > sum(map(sep_share, train[:20])) / 20


def test_schedules_and_pool_files(tmp_path):
    assert eval_points(150, 4) == [30, 60, 90, 120, 150]  # TF: every 30 of 150 epochs
    assert eval_points(2, 1) == [1, 2]
    with pytest.raises(UserError):
        eval_points(3, 3)
    lrs = [sgdr_lr(e, 0.05, 0.0005, 10, 2) for e in range(31)]
    assert lrs[0] == lrs[10] == lrs[30] == 0.05 and lrs[9] < 0.002 and lrs[29] < 0.001
    cfg = ControllerConfig(optimizer="sgd")
    assert controller_lr(cfg, 99) == 1e-3 and math.isclose(controller_lr(cfg, 1100), 9e-4)
    assert pairwise_accuracy([1, 2, 3], [0.1, 0.2, 0.3]) == 1.0
    assert pairwise_accuracy([1, 2, 3], [0.3, 0.2, 0.1]) == 0.0
    g = torch.Generator().manual_seed(3)
    entries = [PoolEntry(a, m, p) for a, m, p in
               zip(random_archs(7, g), [0.1, 0.5, 0.3, 0.9, 0.2, 0.4, 0.6], [math.nan] * 7)]
    write_pool(tmp_path, entries, 1)
    pool, final = read_pool(tmp_path / "arch_pool.scores"), read_arch_pool(
        tmp_path / "arch_pool.final")
    assert [e.measured for e in pool] == [0.9, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert final == [e.arch for e in pool[:5]]
    line = (tmp_path / "arch_pool.scores").read_text().splitlines()[0]
    assert len(line.split("\t")[0].split()) == 40 and line.endswith("\tnan")
