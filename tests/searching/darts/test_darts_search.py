"""DARTS-V1/V2 on the one weight-sharing trainer (searching/darts): outputs on NAS-Bench-201,
a DARTS-space genotype the evaluation tools take as it is, step order, kill + --resume = the
uninterrupted run, bad input."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from searching.darts import train_search as darts_cli
from tests.conftest import (assert_same_oneshot_search, oneshot_history, run_cli_inprocess,
                            run_script, run_search_until_death)
from tests.searching.oneshot.test_oneshot import OUTPUTS, tiny

history = oneshot_history


@pytest.mark.slow
@pytest.mark.parametrize("unrolled", [False, True])
def test_darts_nb201_writes_every_output(unrolled, cifar_root, tmp_path, capsys, one_thread):
    from api.spaces import get_space

    save = tmp_path / "run"
    code, out, err = run_cli_inprocess(
        darts_cli.main, tiny(cifar_root, save, *(["--unrolled"] if unrolled else [])), capsys)
    assert code == 0, err
    for name in OUTPUTS:
        assert (save / name).is_file(), name
    space = get_space("nas-bench-201")
    text = (save / "arch-best.txt").read_text().strip()
    assert space.format(space.parse(text)) == text
    rows = history(save)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["arch"] == text
    weights = np.asarray(rows[0]["edge_weights"]["cell"])
    assert weights.shape == (6, 5) and np.allclose(weights.sum(1), 1.0)
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert "tau" not in rows[0]
    summary = json.loads((save / "summary.json").read_text())
    assert summary["method"] == ("darts-v2" if unrolled else "darts-v1")
    assert summary["space"] == "nas-bench-201" and summary["seed"] == 3
    assert summary["arch"] == text and summary["finished"]
    for key in ("search_seconds", "device"):
        assert key in summary
    assert len((save / "search.log").read_text().splitlines()) == 2
    assert f"searched architecture: {text}" in out
    # AutoDL's NB201 DARTS settings: Nesterov SGD, wd 5e-4; BN without affine
    ckpt = torch.load(save / "checkpoint.pt", weights_only=True)
    assert ckpt["method"] == summary["method"]
    s = ckpt["settings"]
    assert (s["nesterov"], s["weight_decay"], s["momentum"], s["grad_clip"]) == \
        (True, 5e-4, 0.9, 5.0)
    assert s["supernet"]["affine"] is False
    # AutoDL's NB201 DARTS: genotype after each epoch, alphas inside the clip, V1 weights first
    assert s["method_settings"] == {"unrolled": unrolled, "arch_lr": 3e-4,
                                    "arch_weight_decay": 1e-3, "derive_at": "epoch_end",
                                    "clip_alphas": True,
                                    **({} if unrolled else {"step_order": "weights_first"})}


def test_defaults_are_the_official_ones():
    from searching.darts.train_search import DEFAULTS, NESTEROV

    args = darts_cli.build_parser().parse_args(["--space", "darts"])
    assert (args.learning_rate, args.learning_rate_min, args.momentum, args.grad_clip,
            args.arch_learning_rate, args.arch_weight_decay, args.unrolled) == \
        (0.025, 0.001, 0.9, 5.0, 3e-4, 1e-3, False)
    assert DEFAULTS["darts"] == dict(init_channels=16, layers=8, batch_size=64, epochs=50,
                                     weight_decay=3e-4, derive_at="epoch_start")
    assert DEFAULTS["nas-bench-201"] == dict(init_channels=16, layers=5, batch_size=64,
                                             epochs=50, weight_decay=5e-4, derive_at="epoch_end")
    assert args.derive_at is None and args.step_order is None and not args.unroll_nesterov
    assert NESTEROV == {"darts": False, "nas-bench-201": True}


@pytest.mark.parametrize("space", ["darts", "nas-bench-201"])
def test_step_order_architecture_then_weights(space, one_thread):
    """One step = Architect.step (xi = the current lr, the weights' optimizer) then the
    weights' SGD step. On the darts space the alphas' gradient stays the architect's alone
    (quark0's alphas are no module parameters); on NAS-Bench-201 the weight loss's backward
    adds to it (AutoDL's ``network.parameters()``)."""
    from api.spaces import get_space
    from searching.darts.method import DARTS
    from searching.oneshot.trainer import OneShotConfig

    torch.manual_seed(0)
    net = get_space("nas-bench-201").supernet("cifar10", C=4, N=1, affine=False)
    cfg = OneShotConfig(space=space, grad_clip=1e9)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.01, momentum=0.9, weight_decay=3e-4)
    method = DARTS(unrolled=True)
    method.bind(net, w_opt, cfg)
    calls = []
    real = method.architect.step

    def spy(train_batch, val_batch, lr, w_optimizer, unrolled):
        calls.append(("arch", lr, w_optimizer is w_opt, unrolled,
                      [p.detach().clone() for p in net.weight_parameters()]))
        out = real(train_batch, val_batch, lr, w_optimizer, unrolled)
        calls.append([a.grad.clone() for a in net.arch_parameters()])
        return out

    method.architect.step = spy
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    before = [p.detach().clone() for p in net.weight_parameters()]
    figures = method.step(net, (x, y), (x.flip(0), y.flip(0)), 0, 0)
    assert calls and calls[0][1:4] == (0.01, True, True)
    # the architect saw the weights before the weight step
    assert all(torch.equal(a, b) for a, b in zip(calls[0][4], before))
    assert any(not torch.equal(a, p) for a, p in zip(before, net.weight_parameters()))
    assert set(figures) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    dalpha = calls[1]
    assert all(d.abs().sum() > 0 for d in dalpha)
    if space == "darts":  # the architect's dalpha, untouched by the weight step's backward
        assert all(torch.equal(d, a.grad) for d, a in zip(dalpha, net.arch_parameters()))
    else:  # dalpha + the training loss's alpha gradient (at the stepped alphas, w before)
        net2 = get_space("nas-bench-201").supernet("cifar10", C=4, N=1, affine=False)
        net2.load_state_dict(net.state_dict())
        with torch.no_grad():
            for p, b in zip(net2.weight_parameters(), before):
                p.copy_(b)
        loss = torch.nn.functional.cross_entropy(net2(x, mode="softmax"), y)
        g_train = torch.autograd.grad(loss, net2.arch_parameters())
        for d, g, a in zip(dalpha, g_train, net.arch_parameters()):
            assert torch.allclose(a.grad, d + g, atol=1e-6)


@pytest.mark.slow
def test_darts_space_v2_genotype_is_accepted(cifar_root, tmp_path, capsys, one_thread):
    from api.train.arch_train import build_arch_network
    from api.spaces.arch_io import load_arch
    from evaluation.model_info import main as model_info

    save = tmp_path / "run"
    args = tiny(cifar_root, save, "--unrolled", "--no_plots")
    for flag, value in (("--space", "darts"), ("--epochs", 1), ("--layers", 5)):
        args[args.index(flag) + 1] = value
    code, out, err = run_cli_inprocess(darts_cli.main, args, capsys)
    assert code == 0, err
    text = (save / "arch-best.txt").read_text().strip()
    assert text.startswith("Genotype(") and f"searched architecture: {text}" in out
    cells = history(save)[0]["edge_weights"]
    assert sorted(cells) == ["normal", "reduce"]
    assert np.asarray(cells["normal"]).shape == (14, 8)
    # model_info.py takes the file as it is
    code, info, err = run_cli_inprocess(model_info, ["--arch", str(save / "arch-best")], capsys)
    assert code == 0, err
    assert info.startswith("space: darts") and "params=" in info
    # so does the CIFAR trainer's network builder
    arch = load_arch(str(save / "arch-best"))
    assert arch.space == "darts"
    ns = argparse.Namespace(C=4, layers=3, N=None, auxiliary_weight=0.4)
    model, record, costs, headline = build_arch_network(arch, ns, "cifar10", 10, 32)
    model.train()
    out = model(torch.randn(2, 3, 32, 32))
    logits = out[0] if isinstance(out, (tuple, list)) else out
    assert logits.shape == (2, 10) and costs["params"] > 0


@pytest.mark.slow
def test_killed_and_resumed_equals_uninterrupted(cifar_root, tmp_path, capsys, monkeypatch,
                                                  one_thread):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = [*tiny(cifar_root, whole, "--no_plots", "--unrolled"), "--epochs", 3]
    code, _, err = run_cli_inprocess(darts_cli.main, args, capsys)
    assert code == 0, err
    cut_args = [*tiny(cifar_root, cut, "--no_plots", "--unrolled"), "--epochs", 3]
    # between epochs: right after epoch 1's checkpoint
    files = run_search_until_death(darts_cli.main, cut_args, "epoch:1", cut, capsys,
                                   monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    # mid-epoch, with a checkpoint after every step: dies after epoch 2's first step
    files = run_search_until_death(darts_cli.main,
                                   [*cut_args, "--resume", "--checkpoint_minutes", 0], "step:1",
                                   cut, capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    ckpt = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["partial"]["step"] == 1
    code, _, err = run_cli_inprocess(darts_cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    ckpts = assert_same_oneshot_search(cut, whole)
    a, b = ckpts["cut"], ckpts["whole"]
    sa, sb = a["method_state"]["architect"]["optimizer"], b["method_state"]["architect"][
        "optimizer"]
    for k in sa["state"]:
        assert torch.equal(sa["state"][k]["exp_avg"], sb["state"][k]["exp_avg"])


@pytest.mark.parametrize("case", ["space", "damaged", "other_space", "other_method",
                                  "missing"])
def test_bad_input_one_line(case, cifar_root, tmp_path, capsys, one_thread):
    save = tmp_path / "run"
    args = tiny(cifar_root, save, "--no_plots")
    if case == "space":
        args[args.index("--space") + 1] = "nasnet-large"
    elif case == "missing":
        args[args.index("--data") + 1] = tmp_path / "nowhere"
    else:
        one = [*args, "--epochs", 1]
        assert run_cli_inprocess(darts_cli.main, one, capsys)[0] == 0
        args.append("--resume")
        if case == "damaged":
            raw = (save / "checkpoint.pt").read_bytes()
            (save / "checkpoint.pt").write_bytes(raw[: len(raw) // 2])
        elif case == "other_space":
            args[args.index("--space") + 1] = "darts"
        elif case == "other_method":
            args.append("--unrolled")
    code, out, err = run_cli_inprocess(darts_cli.main, args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    expect = {"space": "unknown space", "damaged": "damaged",
              "other_space": "nas-bench-201 space, not darts",
              "other_method": "darts-v1 search, not darts-v2",
              "missing": "no such folder"}[case]
    assert expect in lines[0]


@pytest.mark.slow
def test_cli_smoke_subprocess(cifar_root, tmp_path):
    save = tmp_path / "run"
    args = [str(a) for a in tiny(cifar_root, save, "--no_plots", "--unrolled")]
    args[args.index("--epochs") + 1] = "1"
    proc = run_script("searching/darts/train_search.py", *args)
    assert proc.returncode == 0, proc.stderr
    text = (save / "arch-best.txt").read_text().strip()
    assert f"searched architecture: {text}" in proc.stdout
    bad = run_script("searching/darts/train_search.py", *args, "--space", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def _ten_class_folder(root, per_class: int = 60):
    """A user's own small 10-class image set: any size, grey or colour, png and jpg; each class
    is a bright patch at its own place of a 4x3 grid on noise (learnable, not trivial)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(10):
        (root / "train" / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            w, h = int(rng.integers(24, 64)), int(rng.integers(24, 64))
            arr = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
            row, col = divmod(c, 4)
            arr[row * h // 3:(row + 1) * h // 3, col * w // 4:(col + 1) * w // 4] += 150
            img = Image.fromarray(arr)
            if i % 3 == 0:
                img = img.convert("L")
            img.save(root / "train" / f"class{c}" / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.mark.slow
def test_imagefolder_supernet_beats_chance_within_3_epochs(tmp_path, capsys, one_thread):
    """On a user's small 10-class folder the supernet's validation
    accuracy (architecture half) clearly beats chance (0.1) within 3 epochs (measured 0.44)."""
    data = _ten_class_folder(tmp_path / "imgs")
    save = tmp_path / "run"
    args = ["--space", "nas-bench-201", "--dataset", "imagefolder", "--data", data,
            "--save", save, "--epochs", 3, "--batch_size", 16, "--init_channels", 8,
            "--layers", 1, "--seed", 0, "--device", "cpu", "--quiet", "--no_plots"]
    code, _, err = run_cli_inprocess(darts_cli.main, args, capsys)
    assert code == 0, err
    rows = history(save)
    assert len(rows) == 3
    assert rows[-1]["val_acc"] > 0.3, [r["val_acc"] for r in rows]
