"""ENAS RNN cell search (searching/enas/main.py --network_type rnn): the shared cell against a
plain per-node loop, the controller's samples and log-probabilities, outputs, the found cell
in the RNN trainer and model_info, same seed = same search, kill + --resume = the
uninterrupted run, the WikiText layout, bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from searching.enas import main as enas_main
from tests.conftest import (SHARED_PTB, assert_same_oneshot_search, oneshot_history,
                            run_cli_inprocess, run_script, run_search_until_death,
                            write_chain_corpus)

OUTPUTS = ("arch-best", "arch-best.json", "arch-best.txt", "history.jsonl", "summary.json",
           "search.log", "args.json", "checkpoint.pt", "curves.png", "controller.png")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_chain_corpus(tmp_path_factory.mktemp("ptb"), 24, 12, vocab=12, follow=0.8)


def tiny(data, save, *extra) -> list:
    return ["--network_type", "rnn", "--dataset", "ptb", "--data", data, "--save", save,
            "--shared_embed", 8, "--shared_hid", 8, "--num_blocks", 4, "--batch_size", 4,
            "--shared_rnn_max_length", 5, "--max_epoch", 2, "--shared_max_step", 3,
            "--controller_max_step", 3, "--derive_num_sample", 4, "--seed", 3,
            "--device", "cpu", "--quiet", *extra]


def _reference_cell(cell, arc, x, h):
    """carpedm20's cell, node by node with separate W^c / W^h products (no grouping), and
    the loose ends' mean; BN over the T x B outputs; wdrop off."""
    from api.spaces.enas_rnn import ACTIVATIONS, arc_loose_ends
    from api.spaces.enas_rnn.supernet import MAX_HIDDEN_NORM, edge_index

    f = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda v: v,
         "sigmoid": torch.sigmoid}
    H, n = cell.nhid, (len(arc) + 1) // 2
    outs = []
    for t in range(x.size(0)):
        pre = torch.cat([x[t], h], -1) @ cell.W0 + cell.b0
        s = [h + torch.sigmoid(pre[:, :H]) * (f[ACTIVATIONS[arc[0]]](pre[:, H:]) - h)]
        for k in range(1, n):
            j = arc[2 * k - 1]
            w = cell.Wp[edge_index(k, j)]
            c, g = torch.sigmoid(s[j] @ w[:, :H]), s[j] @ w[:, H:]
            s.append(c * f[ACTIVATIONS[arc[2 * k]]](g) + (1 - c) * s[j])
        m = torch.stack([s[e] for e in arc_loose_ends(arc)]).mean(0)
        outs.append(m)
        h = m * torch.clamp(MAX_HIDDEN_NORM / m.norm(dim=-1, keepdim=True), max=1.0)
    out = torch.stack(outs)
    T, B, _ = out.shape
    return cell.bn(out.reshape(T * B, H)).view(T, B, H), h


def test_shared_cell_equals_per_node_loop():
    from api.spaces import get_space

    torch.manual_seed(0)
    net = get_space("enas-rnn").supernet(20, emsize=6, nhid=6, wdrop=0.0).double()
    assert tuple(net.cell.Wp.shape) == (66, 6, 12) and net.arch_parameters() == []
    with torch.no_grad():
        net.cell.Wp.mul_(40)  # large weights: the norm clip engages
    arc = (1, 0, 0, 0, 3, 1, 2, 2, 1, 0, 2, 5, 3, 3, 0, 5, 1, 1, 2, 8, 0, 1, 0)
    net.set_arc(arc)
    x = torch.randn(4, 3, 6, dtype=torch.double)
    h = torch.randn(3, 6, dtype=torch.double) * 30
    ours, h1 = net.cell(x, h)
    ref, h2 = _reference_cell(net.cell, arc, x, h)
    assert torch.allclose(ours, ref, atol=1e-10) and torch.allclose(h1, h2, atol=1e-10)
    assert h1.norm(dim=-1).max() <= 25.0 + 1e-9


def test_controller_samples_valid_lists_with_their_log_prob():
    from api.spaces.enas_rnn import check_arc
    from searching.enas.rnn_controller import RNNController

    torch.manual_seed(0)
    c = RNNController(num_nodes=12)
    arcs, logp, ent = c.sample(5, torch.Generator().manual_seed(1))
    assert len(arcs) == 5 and all(len(check_arc(a)) == 23 for a in arcs)
    again, logp2, _ = c.sample(5, torch.Generator().manual_seed(1))
    assert again == arcs and torch.equal(logp, logp2)
    # log p of the first sample, decision by decision, teacher-forced
    state, x, total, max_ent = None, torch.zeros(1, c.hidden), 0.0, 0.0
    for d, a in enumerate(arcs[0]):
        state = c.lstm(x, state)
        z = c.tanh_c * torch.tanh(c.heads[d](state[0]) / c.temperature)
        total += float(torch.log_softmax(z, -1)[0, a].detach())
        max_ent += math.log(c.sizes[d])
        x = c.embed(torch.tensor([a + (0 if d % 2 == 0 else 4)]))
    assert float(logp[0].detach()) == pytest.approx(total, abs=1e-5)
    assert 0 < float(ent[0].detach()) <= max_ent


def test_defaults_are_the_documented_ones():
    from searching.enas.config import build_parser
    from searching.enas.rnn_search import resolve_rnn_args

    a = resolve_rnn_args(build_parser().parse_args([]))
    assert (a.num_blocks, a.controller_hid, a.softmax_temperature, a.tanh_c) == (12, 100, 5.0, 2.5)
    assert (a.controller_optim, a.controller_lr, a.entropy_coeff, a.ema_baseline_decay,
            a.reward_c) == ("adam", 3.5e-4, 1e-4, 0.95, 80.0)
    assert (a.shared_max_step, a.controller_max_step, a.max_epoch, a.derive_num_sample) == \
        (400, 2000, 150, 100)
    assert (a.shared_lr, a.shared_grad_clip, a.batch_size, a.shared_rnn_max_length,
            a.shared_embed, a.shared_hid) == (20.0, 0.25, 64, 35, 1000, 1000)
    assert (a.controller_lr_max, a.controller_lr_min, a.shared_bn_init) == (0.05, 1e-3, "uniform")
    assert build_parser().parse_args(["--controller_lr_cosine=True"]).controller_lr_cosine


@pytest.mark.slow
def test_writes_every_output_same_seed_same_search_and_the_cell_trains(
        corpus, tmp_path, capsys, one_thread):
    from api.spaces import get_space
    from evaluation.model_info import main as info_main
    from evaluation.rnn.train import main as train_main

    save = tmp_path / "run"
    code, out, err = run_cli_inprocess(enas_main.main, tiny(corpus, save), capsys)
    assert code == 0, err
    for name in OUTPUTS:
        assert (save / name).is_file(), name
    text = (save / "arch-best.txt").read_text().strip()
    arc = get_space("enas-rnn").parse(text)
    assert len(arc) == 7 and f"searched architecture: {text}" in out
    rows = oneshot_history(save)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["arch"] == text
    for key in ("reward", "entropy", "baseline", "reward_ppl", "train_loss", "eval_ppl",
                "derived_valid_batch_ppl"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert rows[-1]["controller_steps"] == 6 and rows[0]["lr"] == 20.0
    summary = json.loads((save / "summary.json").read_text())
    assert summary["method"] == summary["space"] == "enas-rnn" and summary["finished"]
    assert summary["arch"] == text and summary["search_seconds"] > 0 and summary["device"]
    # same seed, same threads: the same controller samples and the same cell
    again = tmp_path / "again"
    assert run_cli_inprocess(enas_main.main, tiny(corpus, again, "--no_plots"), capsys)[0] == 0
    assert oneshot_history(again) == rows
    # the found cell goes into the RNN trainer and model_info as it is
    code, _, err = run_cli_inprocess(train_main, [
        "--arch", save / "arch-best.txt", "--data", corpus, "--output", tmp_path / "train",
        "--epochs", 1, "--emsize", 8, "--bptt", 5, "--batch_size", 4, "--device", "cpu",
        "--quiet"], capsys)
    assert code == 0, err
    final = json.loads((tmp_path / "train" / "final_metrics.json").read_text())
    assert final["space"] == "enas-rnn" and final["text"] == text
    code, out, err = run_cli_inprocess(info_main, ["--arch", save / "arch-best.json"], capsys)
    assert code == 0 and "params=" in out.splitlines()[-1], err


def test_killed_and_resumed_equals_uninterrupted(corpus, tmp_path, capsys, monkeypatch,
                                                  one_thread):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = [*tiny(corpus, whole, "--no_plots"), "--max_epoch", 3]
    assert run_cli_inprocess(enas_main.main, args, capsys)[0] == 0
    cut_args = [*tiny(corpus, cut, "--no_plots"), "--max_epoch", 3]
    files = run_search_until_death(enas_main.main, cut_args, "epoch:1", cut, capsys,
                                   monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    files = run_search_until_death(enas_main.main,
                                   [*cut_args, "--resume", "--checkpoint_minutes", 0], "step:2",
                                   cut, capsys, monkeypatch)
    ckpt = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["partial"]["step"] == 2
    assert ckpt["method_state"]["controller_steps"] == 3
    assert run_cli_inprocess(enas_main.main, [*cut_args, "--resume"], capsys)[0] == 0
    assert_same_oneshot_search(cut, whole)


def test_wikitext_layout_under_data(tmp_path, capsys, one_thread):
    write_chain_corpus(tmp_path / "data" / "wikitext", 20, 10, vocab=15, follow=0.7, seed=1)
    args = [a for a in tiny("x", "out", "--no_plots", "--max_epoch", 1)]
    args = args[:args.index("--data")] + args[args.index("--data") + 2:]
    args[args.index("ptb")] = "wikitext"
    code, out, err = run_cli_inprocess(enas_main.main, args, capsys, cwd=tmp_path)
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dataset"] == "wikitext" and summary["finished"]


@pytest.mark.parametrize("case,expect", [
    ("network_type", "--network_type 'lstm' is not one of rnn, cnn"),
    ("cnn_space", "--cnn_space 'nasnet'"),
    ("missing", "not found"),
    ("no_valid", "has no valid.txt"),
    ("optim", "--controller_optim 'rmsprop' is not one of adam, sgd, momentum"),
    ("bad_bool", "--controller_lr_cosine"),
])
def test_bad_input_one_line(case, expect, corpus, tmp_path, capsys):
    args = tiny(corpus, tmp_path / "run")
    if case == "network_type":
        args[1] = "lstm"
    elif case == "cnn_space":
        args[1] = "cnn"
        args += ["--cnn_space", "nasnet"]
    elif case == "missing":
        args[args.index("--data") + 1] = tmp_path / "nowhere"
    elif case == "no_valid":
        folder = tmp_path / "text"
        folder.mkdir()
        (folder / "train.txt").write_text("a b c\n")
        args[args.index("--data") + 1] = folder
    elif case == "optim":
        args += ["--controller_optim", "rmsprop"]
    else:
        args += ["--controller_lr_cosine=maybe"]
    code, out, err = run_cli_inprocess(enas_main.main, args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_PTB / "valid.txt").is_file(),
                    reason=f"the PTB proxy is not present at {SHARED_PTB}")
def test_cli_smoke_subprocess_on_the_ptb_proxy(tmp_path):
    save = tmp_path / "run"
    proc = run_script("searching/enas/main.py", "--network_type", "rnn", "--dataset", "ptb",
                      "--data", str(SHARED_PTB), "--save", str(save), "--shared_embed", "8",
                      "--shared_hid", "8", "--max_epoch", "1", "--shared_max_step", "2",
                      "--controller_max_step", "2", "--derive_num_sample", "2",
                      "--train_size", "5000", "--seed", "1", "--quiet", "--no_plots",
                      "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "searched architecture:" in proc.stdout
    assert len((save / "arch-best.txt").read_text().split()) == 23
