"""DARTS-V1/V2 RNN search on PTB-format text (searching/darts/train_search_rnn.py): the search
supernet against DARTS's per-op loop, DARTS's derivation rule, outputs, a genotype the RNN
trainer takes as it is, kill + --resume = the uninterrupted run, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from searching.darts import train_search_rnn as rnn_cli
from tests.conftest import (assert_same_oneshot_search, oneshot_history, run_cli_inprocess,
                            run_script, run_search_until_death, write_chain_corpus)

OUTPUTS = ("arch-best", "arch-best.json", "arch-best.txt", "history.jsonl", "summary.json",
           "search.log", "args.json", "checkpoint.pt", "curves.png", "alpha-heatmap-cell.png",
           "alpha-trajectory-cell.png")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_chain_corpus(tmp_path_factory.mktemp("ptb"), 24, 12, vocab=12, follow=0.8)


def tiny(data: Path, save: Path, *extra) -> list:
    return ["--data", data, "--save", save, "--emsize", 8, "--nhid", 8, "--epochs", 2,
            "--bptt", 5, "--batch_size", 4, "--seed", 3, "--device", "cpu", "--quiet", *extra]


history = oneshot_history


def _darts_cell_reference(cell, probs, x, h, x_mask, h_mask):
    """DARTS's rnn/model_search.py cell, op by op (no folding), for one time step."""
    from api.spaces.darts_rnn.genotype import PRIMITIVES

    acts = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
            "identity": lambda v: v}
    H = cell.nhid
    xh = torch.cat([x * x_mask, h * h_mask], -1)
    c0, h0 = (xh @ cell.W0).split(H, -1)
    s0 = cell.bn(h + torch.sigmoid(c0) * (torch.tanh(h0) - h))
    states, offset = s0.unsqueeze(0), 0
    for i in range(cell.steps):
        ch = (states * h_mask.unsqueeze(0)).reshape(-1, H) @ cell.Ws[i]
        c, hh = ch.view(i + 1, -1, 2 * H).split(H, -1)
        c = c.sigmoid()
        s = torch.zeros_like(s0)
        for k, name in enumerate(PRIMITIVES):
            if name == "none":
                continue
            un = states + c * (acts[name](hh) - states)
            s = s + (probs[offset:offset + i + 1, k].view(-1, 1, 1) * un).sum(0)
        states = torch.cat([states, cell.bn(s).unsqueeze(0)], 0)
        offset += i + 1
    return states[-8:].mean(0)


def test_supernet_cell_equals_darts_per_op_loop():
    from api.spaces import get_space

    torch.manual_seed(0)
    net = get_space("darts-rnn").supernet(20, emsize=6, nhid=6).double()
    assert [n for n, _ in net.named_parameters() if n.startswith("alpha")] == ["alpha"]
    assert tuple(net.alpha.shape) == (36, 5) and len(net.arch_parameters()) == 1
    assert all(p is not net.alpha for p in net.weight_parameters())
    with torch.no_grad():
        net.alpha.normal_()
    x, h = torch.randn(1, 3, 6, dtype=torch.double), torch.randn(3, 6, dtype=torch.double)
    xm = (torch.rand(3, 6) > 0.3).double() * 1.5
    hm = (torch.rand(3, 6) > 0.3).double() * 1.5
    net.cell.probs = torch.softmax(net.alpha, -1)
    ours, _ = net.cell(x, h, xm, hm)
    ref = _darts_cell_reference(net.cell, net.cell.probs, x[0], h, xm, hm)
    assert torch.allclose(ours[0], ref, atol=1e-12)


def test_derive_is_darts_rule():
    from api.spaces import get_space
    from api.spaces.darts_rnn.genotype import PRIMITIVES

    space = get_space("darts-rnn")
    net = space.supernet(10, emsize=4, nhid=4)
    with torch.no_grad():
        net.alpha.zero_()
        net.alpha[:, PRIMITIVES.index("none")] = 10.0      # none never wins
        net.alpha[0, PRIMITIVES.index("relu")] = 3.0        # node 1 <- s0, relu
        net.alpha[2, PRIMITIVES.index("sigmoid")] = 2.0     # node 2: edges 1 (s0), 2 (s1)
        net.alpha[1, PRIMITIVES.index("tanh")] = 1.0
    g = net.derive()
    assert g.recurrent[0] == ("relu", 0) and g.recurrent[1] == ("sigmoid", 1)
    # all equal elsewhere: the first predecessor and the first non-none op (DARTS's order)
    assert all(pair == ("tanh", 0) for pair in g.recurrent[2:])
    assert g.concat == range(1, 9)
    assert space.parse(space.format(g)) == g


def test_defaults_are_the_official_ones():
    a = rnn_cli.build_parser().parse_args([])
    assert (a.emsize, a.nhid, a.lr, a.clip, a.epochs, a.batch_size, a.bptt, a.wdecay) == \
        (300, 300, 20.0, 0.25, 50, 256, 35, 5e-7)
    assert (a.dropout, a.dropouth, a.dropoutx, a.dropouti, a.dropoute, a.beta) == \
        (0.75, 0.25, 0.75, 0.2, 0.0, 1e-3)
    assert (a.arch_lr, a.arch_wdecay, a.unrolled, a.exact_virtual_step) == \
        (3e-3, 1e-3, False, False)


@pytest.mark.slow
@pytest.mark.parametrize("unrolled", [False, True])
def test_writes_every_output_and_the_rnn_trainer_takes_the_genotype(
        unrolled, corpus, tmp_path, capsys, one_thread):
    from api.spaces import get_space
    from evaluation.rnn.train import main as train_main

    save = tmp_path / "run"
    code, out, err = run_cli_inprocess(
        rnn_cli.main, tiny(corpus, save, *(["--unrolled"] if unrolled else [])), capsys)
    assert code == 0, err
    for name in OUTPUTS:
        assert (save / name).is_file(), name
    space = get_space("darts-rnn")
    text = (save / "arch-best.txt").read_text().strip()
    g = space.parse(text)
    assert space.format(g) == text and g.concat == range(1, 9) and len(g.recurrent) == 8
    rows = history(save)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["arch"] == text
    w = np.asarray(rows[0]["edge_weights"]["cell"])
    assert w.shape == (36, 5) and np.allclose(w.sum(1), 1.0)
    for key in ("train_loss", "val_loss", "train_ppl", "val_ppl", "eval_loss", "eval_ppl"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert rows[0]["lr"] == 20.0 and "train_acc" not in rows[0]
    summary = json.loads((save / "summary.json").read_text())
    assert summary["method"] == ("darts-v2" if unrolled else "darts-v1")
    assert summary["space"] == "darts-rnn" and summary["seed"] == 3
    assert summary["arch"] == text and summary["finished"]
    assert summary["final_eval_ppl"] == pytest.approx(rows[-1]["eval_ppl"])
    for key in ("search_seconds", "device"):
        assert key in summary
    assert len((save / "search.log").read_text().splitlines()) == 2
    assert f"searched architecture: {text}" in out
    s = torch.load(save / "checkpoint.pt", weights_only=True)["settings"]
    assert (s["lr"], s["momentum"], s["weight_decay"], s["grad_clip"]) == (20.0, 0.0, 5e-7, 0.25)
    assert s["method_settings"] == {"unrolled": unrolled, "arch_lr": 3e-3,
                                    "arch_weight_decay": 1e-3, "bptt": 5, "beta": 1e-3,
                                    **({"virtual_step": "official"} if unrolled else {})}
    if unrolled:
        return
    # the RNN trainer takes the arch-best file as it is
    run = tmp_path / "train"
    code, _, err = run_cli_inprocess(train_main, [
        "--arch", save / "arch-best", "--data", corpus, "--output", run, "--epochs", 1,
        "--emsize", 8, "--bptt", 5, "--batch_size", 4, "--device", "cpu", "--quiet"], capsys)
    assert code == 0, err
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["space"] == "darts-rnn" and final["text"] == text


@pytest.mark.slow
def test_killed_and_resumed_equals_uninterrupted(corpus, tmp_path, capsys, monkeypatch,
                                                  one_thread):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = [*tiny(corpus, whole, "--no_plots", "--unrolled"), "--epochs", 3]
    code, _, err = run_cli_inprocess(rnn_cli.main, args, capsys)
    assert code == 0, err
    cut_args = [*tiny(corpus, cut, "--no_plots", "--unrolled"), "--epochs", 3]
    files = run_search_until_death(rnn_cli.main, cut_args, "epoch:1", cut, capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    # mid-epoch, a checkpoint after every step: dies after epoch 2's second step (the hidden
    # states carried across windows come from the checkpoint)
    files = run_search_until_death(rnn_cli.main,
                                   [*cut_args, "--resume", "--checkpoint_minutes", 0], "step:2",
                                   cut, capsys, monkeypatch)
    ckpt = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["partial"]["step"] == 2
    assert ckpt["method_state"]["hidden"].shape == (4, 8)
    code, _, err = run_cli_inprocess(rnn_cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    assert_same_oneshot_search(cut, whole)


@pytest.mark.parametrize("case", ["missing", "damaged"])
def test_bad_input_one_line(case, corpus, tmp_path, capsys, one_thread):
    save = tmp_path / "run"
    args = tiny(corpus, save, "--no_plots", "--epochs", 1)
    if case == "missing":
        args[args.index("--data") + 1] = tmp_path / "nowhere"
    else:
        assert run_cli_inprocess(rnn_cli.main, args, capsys)[0] == 0
        raw = (save / "checkpoint.pt").read_bytes()
        (save / "checkpoint.pt").write_bytes(raw[: len(raw) // 2])
        args.append("--resume")
    code, out, err = run_cli_inprocess(rnn_cli.main, args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert {"missing": "corpus folder not found", "damaged": "damaged"}[case] in lines[0]


@pytest.mark.slow
def test_cli_smoke_subprocess(corpus, tmp_path):
    save = tmp_path / "run"
    args = [str(a) for a in tiny(corpus, save, "--no_plots", "--epochs", 1)]
    proc = run_script("searching/darts/train_search_rnn.py", *args)
    assert proc.returncode == 0, proc.stderr
    text = (save / "arch-best.txt").read_text().strip()
    assert f"searched architecture: {text}" in proc.stdout
