"""SETN on NAS-Bench-201 (searching/setn): the candidates (the most probable cells under
softmax(alpha)), the step by hand in float64, the CLI's outputs with the benchmark table,
kill + --resume = the uninterrupted run, bad input."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from api.spaces import get_space
from api.spaces.nasbench201.supernet import NASBench201Supernet
from searching.oneshot.trainer import OneShotConfig
from searching.setn import search as setn_cli
from searching.setn.method import SETN, top_k_cells
from tests.conftest import (SHARED_DATA, assert_same_oneshot_search, oneshot_history,
                            run_cli_inprocess, run_script, run_search_until_death)

TABLE = SHARED_DATA / "nasbench201" / "nb201.csv.gz"
OUTPUTS = ("arch-best", "arch-best.json", "arch-best.txt", "history.jsonl", "summary.json",
           "search.log", "args.json", "checkpoint.pt")
PLOTS = ("curves.png", "alpha-heatmap-cell.png", "alpha-trajectory-cell.png")
SPACE = get_space("nas-bench-201")


def tiny(data: Path, save: Path, *extra) -> list:
    """2 steps an epoch (32 weight images, batch 16); 4 evaluation batches of 8 a pass."""
    return ["--space", "nas-bench-201", "--dataset", "cifar10", "--data", data, "--save", save,
            "--epochs", 2, "--batch_size", 16, "--train_size", 64, "--init_channels", 4,
            "--layers", 1, "--seed", 3, "--device", "cpu", "--quiet", "--select_num", 5,
            "--test_batch_size", 8, *extra]


# --------------------------------------------------------------------------- candidates
def test_top_k_cells_rank_every_cell_by_log_probability():
    g = torch.Generator().manual_seed(0)
    alpha = torch.randn(6, 5, generator=g)
    logp = torch.log_softmax(alpha, dim=-1)
    every = list(itertools.product(range(5), repeat=6))
    score = {a: sum(float(logp[e, a[e]]) for e in range(6)) for a in every}
    got = top_k_cells(alpha, 50, SPACE)
    assert len(got) == 50
    scores = [score[SPACE.arch_op_indices(c)] for c in got]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(max(score.values()), abs=1e-5)
    assert got[0] == SPACE.arch_from_op_indices(alpha.argmax(1).tolist())
    assert len(top_k_cells(alpha, -1, SPACE)) == len(every) == \
        len(top_k_cells(alpha, 10 ** 6, SPACE))


def test_top_k_cells_keep_enumeration_order_on_ties():
    # equal alphas: every cell ties; the first edge's op varies slowest, as Structure.gen_all
    got = top_k_cells(torch.zeros(6, 5), 7, SPACE)
    assert [SPACE.arch_op_indices(c) for c in got] == \
        list(itertools.product(range(5), repeat=6))[:7]
    # edges 1-5 favour op 3 and tie on edge 0's ops 0 and 4: ops 0 then 4
    alpha = torch.zeros(6, 5)
    alpha[1:, 3] = 2.0
    alpha[0, 0] = alpha[0, 4] = 1.0
    got = top_k_cells(alpha, 2, SPACE)
    assert [SPACE.arch_op_indices(c) for c in got] == [(0, 3, 3, 3, 3, 3), (4, 3, 3, 3, 3, 3)]


# --------------------------------------------------------------------------- the step by hand
def tiny_net(seed: int = 0) -> NASBench201Supernet:
    torch.manual_seed(seed)
    net = NASBench201Supernet(10, C=2, N=1, affine=False, track_running_stats=True).double()
    with torch.no_grad():
        net.alpha_cell.copy_(torch.randn(6, 5, dtype=torch.float64))
    return net


def test_setn_step_by_hand(one_thread):
    """One SETN step in float64 against the maths written out: the weights' Nesterov SGD on
    the gradient of the drawn cell's cross-entropy (no clipping), then alpha's Adam step on
    the gradient of the softmax-weighted supernet's cross-entropy at the new weights."""
    net, ref = tiny_net(), tiny_net()
    sgd = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    opt = torch.optim.SGD(net.weight_parameters(), **sgd)
    method = SETN(arch_lr=0.05, arch_weight_decay=0.001, seed=5)
    method.bind(net, opt, OneShotConfig(space="nas-bench-201", epochs=1, grad_clip=0.0))
    cell = SPACE.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+"
                       "|nor_conv_1x1~0|nor_conv_3x3~1|avg_pool_3x3~2|")
    method.cells.sample = lambda: cell
    g = torch.Generator().manual_seed(1)
    xw, yw, xa, ya = (torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64),
                      torch.randint(0, 10, (4,), generator=g),
                      torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64),
                      torch.randint(0, 10, (4,), generator=g))
    figures = method.step(net, (xw, yw), (xa, ya), 0, 0)
    params = list(ref.weight_parameters())
    loss = F.cross_entropy(ref(xw, mode="fixed", arch=cell), yw)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    with torch.no_grad():
        for p, gr in zip(params, grads):
            if gr is not None:
                d = gr + 0.01 * p
                p.sub_(0.1 * (d + 0.9 * d))  # first step: the momentum buffer is d
    loss_a = F.cross_entropy(ref(xa, mode="softmax"), ya)
    (ga,) = torch.autograd.grad(loss_a, [ref.alpha_cell])
    with torch.no_grad():  # Adam's first step, betas (0.5, 0.999), weight decay 1e-3
        ga = ga + 0.001 * ref.alpha_cell
        m, v = 0.5 * ga, 0.001 * ga * ga
        m_hat, v_hat = m / 0.5, v / 0.001
        ref.alpha_cell.sub_(0.05 * m_hat / (v_hat.sqrt() + 1e-8))
    assert float(figures["train_loss"]) == pytest.approx(loss.item(), abs=1e-12)
    assert float(figures["arch_loss"]) == pytest.approx(loss_a.item(), abs=1e-12)
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-12), name


# --------------------------------------------------------------------------- the CLI
def test_setn_writes_every_output_with_the_benchmark(cifar_root, tmp_path, capsys, one_thread):
    if not TABLE.is_file():
        pytest.skip(f"the NAS-Bench-201 table is not present at {TABLE}")
    save = tmp_path / "run"
    code, out, err = run_cli_inprocess(setn_cli.main, tiny(cifar_root, save, "--benchmark_file",
                                                           TABLE, "--no_plots"), capsys)
    assert code == 0, err
    for name in OUTPUTS:
        assert (save / name).is_file(), name
    rows = oneshot_history(save)
    text = (save / "arch-best.txt").read_text().strip()
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["arch"] == text
    for r in rows:
        for key in ("train_loss", "train_acc", "arch_loss", "arch_acc", "val_loss", "val_acc",
                    "pick_acc", "lr"):
            assert np.isfinite(r[key]), key
        assert 0 <= r["pick_rank"] < 5
        assert np.allclose(np.asarray(r["edge_weights"]["cell"]).sum(1), 1.0)
    assert {"epoch_arch", "epoch_val_acc", "epoch_pick_rank"} <= set(rows[-1])
    assert "epoch_arch" not in rows[0]
    summary = json.loads((save / "summary.json").read_text())
    assert summary["method"] == "setn" and summary["arch"] == text and summary["finished"]
    import csv
    import gzip

    with gzip.open(TABLE, "rt") as f:
        table = {r["arch"]: r for r in csv.DictReader(f)}
    assert summary["benchmark"]["cifar100"] == float(table[text]["nb201_cifar100_test_200ep"])
    for row in rows:
        assert row["benchmark"]["cifar10"] == float(table[row["arch"]]["nats_cifar10_test_200ep"])
    args = json.loads((save / "args.json").read_text())
    assert args["grad_clip"] == 0.0  # AutoDL's SETN clips nothing
    assert f"searched architecture: {text}" in out


def test_setn_killed_and_resumed_equals_uninterrupted(cifar_root, tmp_path, capsys,
                                                      monkeypatch, one_thread):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_cli_inprocess(setn_cli.main, tiny(cifar_root, whole, "--no_plots"), capsys)[0] == 0
    cut_args = tiny(cifar_root, cut, "--no_plots", "--checkpoint_minutes", 0)
    # mid-epoch 1 (its checkpoint after step 1), then, resumed, after epoch 1's checkpoint
    files = run_search_until_death(setn_cli.main, cut_args, "step:2", cut, capsys, monkeypatch)
    assert "history.jsonl" not in files
    files = run_search_until_death(setn_cli.main, [*cut_args, "--resume"], "epoch:1", cut,
                                   capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    code, _, err = run_cli_inprocess(setn_cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    states = assert_same_oneshot_search(cut, whole)
    a, b = states["cut"]["method_state"], states["whole"]["method_state"]
    assert a["cells"] == b["cells"] and a["grads"] == b["grads"]


@pytest.mark.parametrize("case", ["darts", "select_num"])
def test_setn_bad_input_one_line(case, cifar_root, tmp_path, capsys):
    args = tiny(cifar_root, tmp_path / "run", "--no_plots")
    if case == "darts":
        args[args.index("--space") + 1] = "darts"
    else:
        args += ["--select_num", 0]
    code, out, err = run_cli_inprocess(setn_cli.main, args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert {"darts": "unknown space 'darts' for SETN", "select_num": "--select_num"}[case] \
        in lines[0]


@pytest.mark.slow
def test_setn_cli_smoke_subprocess(cifar_root, tmp_path):
    save = tmp_path / "run"
    args = [str(a) for a in tiny(cifar_root, save)]
    args[args.index("--epochs") + 1] = "1"
    proc = run_script("searching/setn/search.py", *args)
    assert proc.returncode == 0, proc.stderr
    text = (save / "arch-best.txt").read_text().strip()
    assert f"searched architecture: {text}" in proc.stdout
    for name in (*OUTPUTS, *PLOTS):
        assert (save / name).is_file(), name
