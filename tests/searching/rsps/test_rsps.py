"""RSPS on NAS-Bench-201 (searching/rsps) and the sampling parts it shares with SETN
(searching/oneshot/sampling.py): the uniform draw, AutoDL's evaluation loader and pick, the
weight step by hand in float64, the CLI's outputs with the benchmark table, kill + --resume =
the uninterrupted run, bad input."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from api.spaces import get_space
from api.spaces.nasbench201.supernet import NASBench201Supernet
from searching.oneshot.sampling import (EvalLoader, UniformCells, evaluate_pass, pick_best,
                                        top1_percent, zero_grads)
from searching.oneshot.trainer import OneShotConfig
from searching.rsps import search as rsps_cli
from searching.rsps.method import RSPS
from tests.conftest import (SHARED_DATA, assert_same_oneshot_search, oneshot_history,
                            run_cli_inprocess, run_script, run_search_until_death)

TABLE = SHARED_DATA / "nasbench201" / "nb201.csv.gz"
OUTPUTS = ("arch-best", "arch-best.json", "arch-best.txt", "history.jsonl", "summary.json",
           "search.log", "args.json", "checkpoint.pt")
PLOTS = ("curves.png",)
SPACE = get_space("nas-bench-201")


def tiny(data: Path, save: Path, *extra) -> list:
    """2 steps an epoch (32 weight images, batch 16); 4 evaluation batches of 8 a pass."""
    return ["--space", "nas-bench-201", "--dataset", "cifar10", "--data", data, "--save", save,
            "--epochs", 2, "--batch_size", 16, "--train_size", 64, "--init_channels", 4,
            "--layers", 1, "--seed", 3, "--device", "cpu", "--quiet", "--select_num", 5,
            "--test_batch_size", 8, *extra]


# --------------------------------------------------------------------------- sampling parts
def test_uniform_cells_draw_each_edge_with_random_choice_in_edge_order():
    cells = UniformCells(SPACE, 11)
    ref = random.Random(11)
    for _ in range(20):
        want = [SPACE.ops[ref.choice(range(len(SPACE.ops)))] for _ in SPACE.edges]
        assert cells.sample().ops == tuple(want)
    state = cells.state_dict()
    after = [cells.sample() for _ in range(5)]
    other = UniformCells(SPACE, 0)
    other.load_state_dict(json.loads(json.dumps(state)))  # survives a plain-data round trip
    assert [other.sample() for _ in range(5)] == after


def test_eval_loader_passes_are_permutations_with_a_partial_last_batch():
    from api.datasets import DeviceBatches

    x = np.zeros((10, 3, 2, 2), dtype=np.uint8)
    y = np.arange(10)
    data = DeviceBatches(x, y, np.zeros(3), np.ones(3), torch.device("cpu"))
    loader = EvalLoader(data, 4, seed=0)
    one = [b[1].tolist() for b in loader.one_pass()]
    assert [len(b) for b in one] == [4, 4, 2] and sorted(sum(one, [])) == list(range(10))
    # count > a pass: a new pass (new permutation) starts where the last one ran out
    loader = EvalLoader(data, 4, seed=0)
    got = [b[1].tolist() for b in loader.batches(5)]
    assert [len(b) for b in got] == [4, 4, 2, 4, 4]
    assert got[:3] == one and sorted(sum(got[:3], [])) == list(range(10))
    g = torch.Generator().manual_seed(0)
    torch.randperm(10, generator=g)
    second = torch.randperm(10, generator=g).tolist()
    assert sum(got[3:], []) == second[:8]


class ScoreByCell(nn.Module):
    """Logits that are right for the first ``right[cell]`` images of any batch."""

    def __init__(self, right):
        super().__init__()
        self.right = right

    def forward(self, x, mode, arch):
        assert mode == "fixed"
        y = x[:, 0, 0, 0].round().long()
        logits = torch.zeros(len(y), 10)
        k = min(self.right[arch], len(y))
        wrong = torch.arange(len(y)) >= k
        logits[torch.arange(len(y)), torch.where(wrong, (y + 1) % 10, y)] = 1.0
        return logits


def test_pick_best_scores_each_cell_on_the_next_batch_first_highest_wins():
    from api.datasets import DeviceBatches

    x = np.zeros((10, 3, 2, 2), dtype=np.uint8)
    y = np.arange(10) % 10
    x[:, 0, 0, 0] = y
    data = DeviceBatches(x, y, np.zeros(3), np.ones(3) / 255.0, torch.device("cpu"))
    # batch sizes 4, 4, 2, 4 (a new pass): a 1/4, b 3/4, c 2/2 (the partial batch), d 3/4
    net = ScoreByCell({"a": 1, "b": 3, "c": 2, "d": 3})
    cell, acc, pos = pick_best(net, EvalLoader(data, 4, seed=0), ["a", "b", "c", "d"])
    assert (cell, acc, pos) == ("c", 100.0, 2)
    # a tie (b, d: 75%) goes to the first; "a" gets the 2-image batch: 50%
    net.right["a"] = 1
    cell, acc, pos = pick_best(net, EvalLoader(data, 4, seed=0), ["b", "d", "a"])
    assert (cell, acc, pos) == ("b", 75.0, 0)
    out = evaluate_pass(net, EvalLoader(data, 4, seed=0), lambda: "b")
    assert out["val_acc"] == pytest.approx((3 + 3 + 2) / 10)


def test_top1_percent_is_float32_correct_times_100_over_batch():
    logits = torch.eye(3)[[0, 1, 2, 0, 0, 0, 1]]
    y = torch.tensor([0, 1, 2, 1, 1, 1, 1])
    assert top1_percent(logits, y) == float(torch.tensor(4.0).mul_(100.0 / 7))


def test_zero_grads_modes():
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    a.grad = torch.full((2,), 3.0)
    zero_grads([a, b], "zero")
    assert torch.equal(a.grad, torch.zeros(2)) and b.grad is None
    zero_grads([a, b], "none")
    assert a.grad is None and b.grad is None


# --------------------------------------------------------------------------- the step by hand
def tiny_net(seed: int = 0) -> NASBench201Supernet:
    torch.manual_seed(seed)
    return NASBench201Supernet(10, C=2, N=1, affine=False, track_running_stats=True).double()


def conv_weight(net, cell_index: int, edge: int, op: str) -> torch.Tensor:
    """The conv weight of ``op`` on ``edge`` of the ``cell_index``-th search cell."""
    from api.spaces.nasbench201.supernet import SearchCell

    cell = [c for c in net.cells if isinstance(c, SearchCell)][cell_index]
    return next(p for p in cell.edges[edge][SPACE.ops.index(op)].parameters() if p.dim() == 4)


@pytest.mark.parametrize("unused", ["zero", "none"])
def test_rsps_step_by_hand(unused, one_thread):
    """Two RSPS steps in float64 against the maths written out: cross-entropy of the drawn
    cell alone, gradient-norm clip over all parameters, Nesterov SGD with weight decay. A conv
    the second cell leaves out: under ``zero`` its zero gradient still gets decay and momentum
    (PyTorch < 2.0's zero_grad), under ``none`` it stays put."""
    net, ref = tiny_net(), tiny_net()
    cfg = OneShotConfig(space="nas-bench-201", epochs=1, grad_clip=0.05)
    sgd = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    opt = torch.optim.SGD(net.weight_parameters(), **sgd)
    method = RSPS(unused_grads=unused, seed=5)
    method.bind(net, opt, cfg)
    # edge 0 (1<-0): a 3x3 conv in the first cell only; every op reaches the output
    first = SPACE.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+"
                        "|nor_conv_1x1~0|nor_conv_3x3~1|skip_connect~2|")
    second = SPACE.parse("|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
                         "|none~0|skip_connect~1|nor_conv_3x3~2|")
    method.cells.sample = iter([first, second]).__next__
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64),
                torch.randint(0, 10, (4,), generator=g)) for _ in range(2)]
    params = list(ref.weight_parameters())
    bufs = [None] * len(params)
    used_before = [False] * len(params)
    for (x, y), cell in zip(batches, (first, second)):
        figures = method.step(net, (x, y), None, 0, 0)
        # by hand on ref
        for p in params:
            p.grad = None
        loss = F.cross_entropy(ref(x, mode="fixed", arch=cell), y)
        assert float(figures["train_loss"]) == pytest.approx(loss.item(), abs=1e-12)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        used = [gr is not None for gr in grads]
        grads = [torch.zeros_like(p) if gr is None else gr for p, gr in zip(params, grads)]
        norm = torch.sqrt(sum((gr ** 2).sum() for gr in grads))
        scale = min(1.0, 0.05 / (float(norm) + 1e-6))
        with torch.no_grad():
            for k, (p, gr) in enumerate(zip(params, grads)):
                moves = used[k] or (unused == "zero" and used_before[k])
                if not moves:
                    continue
                d = gr * scale + 0.01 * p
                bufs[k] = d.clone() if bufs[k] is None else 0.9 * bufs[k] + d
                p.sub_(0.1 * (d + 0.9 * bufs[k]))
        used_before = [a or b for a, b in zip(used_before, used)]
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-12), name
    # edge 0's 3x3 conv: used by the first cell only
    w_net, w_ref0 = conv_weight(net, 0, 0, "nor_conv_3x3"), conv_weight(tiny_net(), 0, 0,
                                                                          "nor_conv_3x3")
    assert net.alpha_cell.grad is None
    moved = not torch.equal(w_net, w_ref0)
    assert moved  # the first step trained it
    state = opt.state[w_net]["momentum_buffer"].clone()
    if unused == "none":  # the second step left it and its momentum alone
        assert w_net.grad is None
    else:
        assert torch.equal(w_net.grad, torch.zeros_like(w_net)) and state.abs().sum() > 0


# --------------------------------------------------------------------------- the CLI
def test_rsps_writes_every_output_with_the_benchmark(cifar_root, tmp_path, capsys, one_thread):
    if not TABLE.is_file():
        pytest.skip(f"the NAS-Bench-201 table is not present at {TABLE}")
    save = tmp_path / "run"
    code, out, err = run_cli_inprocess(rsps_cli.main, tiny(cifar_root, save, "--benchmark_file",
                                                           TABLE, "--no_plots"), capsys)
    assert code == 0, err
    for name in OUTPUTS:
        assert (save / name).is_file(), name
    rows = oneshot_history(save)
    text = (save / "arch-best.txt").read_text().strip()
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["arch"] == text
    for r in rows:
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "pick_acc", "lr"):
            assert np.isfinite(r[key]), key
        assert 0 <= r["val_acc"] <= 1 and r["pick_acc"] * 8 == round(r["pick_acc"] * 8)
        assert r["edge_weights"] == {}
    # the last epoch holds AutoDL's per-epoch pick and, as its cell, the final pick
    assert "epoch_arch" in rows[-1] and "epoch_arch" not in rows[0]
    SPACE.parse(rows[-1]["epoch_arch"])
    summary = json.loads((save / "summary.json").read_text())
    assert summary["method"] == "rsps" and summary["arch"] == text and summary["finished"]
    import csv
    import gzip

    with gzip.open(TABLE, "rt") as f:
        table = {r["arch"]: r for r in csv.DictReader(f)}
    assert summary["benchmark"]["cifar10"] == float(table[text]["nats_cifar10_test_200ep"])
    for row in rows:
        assert row["benchmark"]["cifar10"] == float(table[row["arch"]]["nats_cifar10_test_200ep"])
    assert f"searched architecture: {text}" in out


def test_rsps_killed_and_resumed_equals_uninterrupted(cifar_root, tmp_path, capsys,
                                                      monkeypatch, one_thread):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = [*tiny(cifar_root, whole, "--no_plots"), "--epochs", 3]
    assert run_cli_inprocess(rsps_cli.main, args, capsys)[0] == 0
    cut_args = [*tiny(cifar_root, cut, "--no_plots", "--checkpoint_minutes", 0), "--epochs", 3]
    # after epoch 1's checkpoint; then, resumed, after epoch 2's last step (its checkpoint
    # holds step 1 of epoch 2: the resume goes on mid-epoch)
    files = run_search_until_death(rsps_cli.main, cut_args, "epoch:1", cut, capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    files = run_search_until_death(rsps_cli.main, [*cut_args, "--resume"], "step:2", cut,
                                   capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    code, _, err = run_cli_inprocess(rsps_cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    assert_same_oneshot_search(cut, whole)


@pytest.mark.parametrize("case", ["darts", "select_num", "test_batch"])
def test_rsps_bad_input_one_line(case, cifar_root, tmp_path, capsys):
    args = tiny(cifar_root, tmp_path / "run", "--no_plots")
    if case == "darts":
        args[args.index("--space") + 1] = "darts"
    elif case == "select_num":
        args += ["--select_num", 0]
    else:
        args += ["--test_batch_size", -1]
    code, out, err = run_cli_inprocess(rsps_cli.main, args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert {"darts": "unknown space 'darts' for RSPS", "select_num": "--select_num",
            "test_batch": "--test_batch_size"}[case] in lines[0]


@pytest.mark.slow
def test_rsps_cli_smoke_subprocess(cifar_root, tmp_path):
    save = tmp_path / "run"
    args = [str(a) for a in tiny(cifar_root, save)]
    args[args.index("--epochs") + 1] = "1"
    proc = run_script("searching/rsps/search.py", *args)
    assert proc.returncode == 0, proc.stderr
    text = (save / "arch-best.txt").read_text().strip()
    assert f"searched architecture: {text}" in proc.stdout
    for name in (*OUTPUTS, *PLOTS):
        assert (save / name).is_file(), name
    assert not list(save.glob("alpha-*.png"))  # RSPS has no alpha
