"""The one weight-sharing trainer (searching/oneshot/trainer.py) with GDAS on NAS-Bench-201:
outputs, the tau schedule, kill + --resume = the uninterrupted run, bad input."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from searching.gdas import search as gdas_cli
from searching.gdas.method import tau_at
from tests.conftest import (REPO, folder_files, kill_9_when, oneshot_history, run_cli_inprocess,
                            run_script, run_search_until_death)

TABLE = REPO.parent / "shared" / "data" / "nasbench201" / "nb201.csv.gz"
OUTPUTS = ("arch-best", "arch-best.json", "arch-best.txt", "history.jsonl", "summary.json",
           "search.log", "args.json", "checkpoint.pt", "curves.png", "alpha-heatmap-cell.png",
           "alpha-trajectory-cell.png")


def tiny(data: Path, save: Path, *extra) -> list:
    return ["--space", "nas-bench-201", "--dataset", "cifar10", "--data", data, "--save", save,
            "--epochs", 2, "--batch_size", 16, "--train_size", 64, "--init_channels", 4,
            "--layers", 1, "--seed", 3, "--device", "cpu", "--quiet", *extra]


history = oneshot_history


@pytest.mark.slow
def test_gdas_nb201_writes_every_output(cifar_root, tmp_path, capsys, one_thread):
    from api.spaces import get_space

    save = tmp_path / "run"
    code, out, err = run_cli_inprocess(gdas_cli.main, tiny(cifar_root, save), capsys)
    assert code == 0, err
    for name in OUTPUTS:
        assert (save / name).is_file(), name
    text = (save / "arch-best.txt").read_text().strip()
    cell = get_space("nas-bench-201").parse(text)
    assert get_space("nas-bench-201").format(cell) == text
    rows = history(save)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["arch"] == text
    assert np.asarray(rows[0]["edge_weights"]["cell"]).shape == (6, 5)
    assert np.allclose(np.asarray(rows[0]["edge_weights"]["cell"]).sum(1), 1.0)
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "tau", "lr"):
        assert all(np.isfinite(r[key]) for r in rows), key
    summary = json.loads((save / "summary.json").read_text())
    for key in ("search_seconds", "device", "method", "space", "seed", "arch"):
        assert key in summary, key
    assert summary["method"] == "gdas" and summary["space"] == "nas-bench-201"
    assert summary["seed"] == 3 and summary["arch"] == text and summary["finished"]
    log = (save / "search.log").read_text().splitlines()
    assert len(log) == 2 and all(line.endswith(r["arch"]) for line, r in zip(log, rows))
    assert f"searched architecture: {text}" in out
    assert text in out  # printed every epoch
    args = json.loads((save / "args.json").read_text())
    assert args["space"] == "nas-bench-201" and args["seed"] == 3


def test_benchmark_lookup(cifar_root, tmp_path, capsys, one_thread):
    if not TABLE.is_file():
        pytest.skip(f"the NAS-Bench-201 table is not present at {TABLE}")
    save = tmp_path / "run"
    code, _, err = run_cli_inprocess(
        gdas_cli.main, tiny(cifar_root, save, "--benchmark_file", TABLE, "--no_plots"), capsys)
    assert code == 0, err
    summary = json.loads((save / "summary.json").read_text())
    rows = history(save)
    import csv
    import gzip

    with gzip.open(TABLE, "rt") as f:
        table = {r["arch"]: r for r in csv.DictReader(f)}
    want = table[summary["arch"]]
    assert summary["benchmark"] == {"cifar10": float(want["nats_cifar10_test_200ep"]),
                                    "cifar100": float(want["nb201_cifar100_test_200ep"]),
                                    "imagenet16": float(want["nb201_imagenet16_test_200ep"])}
    assert len(summary["benchmark_per_epoch"]) == 2
    for row, bench in zip(rows, summary["benchmark_per_epoch"]):
        assert row["benchmark"] == bench
        assert bench["cifar10"] == float(table[row["arch"]]["nats_cifar10_test_200ep"])
    assert not (save / "curves.png").exists()  # --no_plots


def test_tau_schedule(cifar_root, tmp_path, capsys, one_thread):
    # AutoDL: tau = tau_max - (tau_max - tau_min) * epoch / (epochs - 1)
    assert [round(tau_at(e, 5), 6) for e in range(5)] == [10.0, 7.525, 5.05, 2.575, 0.1]
    assert tau_at(0, 250) == 10.0 and abs(tau_at(249, 250) - 0.1) < 1e-12
    assert tau_at(0, 1) == 10.0
    save = tmp_path / "run"
    code, _, err = run_cli_inprocess(
        gdas_cli.main, [*tiny(cifar_root, save, "--no_plots"), "--epochs", 3, "--tau_max", 5,
                        "--tau_min", 1], capsys)
    assert code == 0, err
    assert [r["tau"] for r in history(save)] == [5.0, 3.0, 1.0]
    # cosine lr per epoch, 0.025 -> 0.001 over T_max = epochs (DARTS / AutoDL)
    lrs = [r["lr"] for r in history(save)]
    assert lrs[0] == 0.025 and abs(lrs[1] - (0.001 + 0.024 * 0.75)) < 1e-12


def test_killed_and_resumed_equals_uninterrupted(cifar_root, tmp_path, capsys, monkeypatch,
                                                  one_thread):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = [*tiny(cifar_root, whole, "--no_plots"), "--epochs", 3]
    code, _, err = run_cli_inprocess(gdas_cli.main, args, capsys)
    assert code == 0, err
    cut_args = [*tiny(cifar_root, cut, "--no_plots"), "--epochs", 3]
    # between epochs: right after epoch 1's checkpoint
    files = run_search_until_death(gdas_cli.main, cut_args, "epoch:1", cut, capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    # mid-epoch: 2 steps an epoch, so step 3 is in epoch 3 (epoch 2 checkpointed)
    files = run_search_until_death(gdas_cli.main, [*cut_args, "--resume"], "step:3", cut,
                                   capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 2
    code, _, err = run_cli_inprocess(gdas_cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    assert history(cut) == history(whole)
    for name in ("arch-best.txt", "arch-best.json", "arch-best", "search.log"):
        if name == "search.log":
            continue  # holds no seconds, but compare it too below
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name
    assert (cut / "search.log").read_text() == (whole / "search.log").read_text()
    a = torch.load(cut / "checkpoint.pt", weights_only=True)
    b = torch.load(whole / "checkpoint.pt", weights_only=True)
    for key in a["net"]:
        assert torch.equal(a["net"][key], b["net"][key]), key
    # resuming a finished search changes nothing but rewrites the same outputs
    before = folder_files(cut)
    code, _, err = run_cli_inprocess(gdas_cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    assert history(cut) == history(whole) and (cut / "arch-best.txt").read_bytes() == \
        before["arch-best.txt"]


def test_mid_epoch_checkpoint_resume_equals_uninterrupted(cifar_root, tmp_path, capsys,
                                                          monkeypatch, one_thread):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    code, _, err = run_cli_inprocess(gdas_cli.main, tiny(cifar_root, whole, "--no_plots"),
                                     capsys)
    assert code == 0, err
    # a checkpoint after every step; 2 steps an epoch: step 3 = epoch 2's first step
    cut_args = tiny(cifar_root, cut, "--no_plots", "--checkpoint_minutes", 0)
    files = run_search_until_death(gdas_cli.main, cut_args, "step:3", cut, capsys, monkeypatch)
    ckpt = torch.load(io.BytesIO(files["checkpoint.pt"]), weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["partial"]["epoch"] == 1 and ckpt["partial"]["step"] == 1
    code, _, err = run_cli_inprocess(gdas_cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    assert history(cut) == history(whole)
    assert (cut / "arch-best.txt").read_bytes() == (whole / "arch-best.txt").read_bytes()
    a = torch.load(cut / "checkpoint.pt", weights_only=True)
    b = torch.load(whole / "checkpoint.pt", weights_only=True)
    assert a["partial"] is None
    for key in a["net"]:
        assert torch.equal(a["net"][key], b["net"][key]), key


@pytest.mark.slow
def test_real_kill_9_and_resume(cifar_root, tmp_path, capsys, monkeypatch, one_thread):
    """A real SIGKILL at a timing-dependent point after the first epoch (mid-epoch
    checkpoints after every step), then --resume: the uninterrupted run's history. The
    killed process computes with one thread as this one does (float sums depend on it)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = [*tiny(cifar_root, whole, "--no_plots"), "--epochs", 4]
    code, _, err = run_cli_inprocess(gdas_cli.main, args, capsys)
    assert code == 0, err
    cut_args = [*tiny(cifar_root, cut, "--no_plots", "--checkpoint_minutes", 0), "--epochs", 4]
    kill_9_when("searching/gdas/search.py", cut_args, cut / "history.jsonl", 1)
    assert len(history(cut)) < 4
    code, _, err = run_cli_inprocess(gdas_cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    assert history(cut) == history(whole)
    assert (cut / "arch-best.txt").read_bytes() == (whole / "arch-best.txt").read_bytes()


def _imagefolder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        (root / "train" / f"class{c}").mkdir(parents=True)
        for i in range(12):
            size = (20 + 7 * i, 30 + 3 * c)
            arr = rng.integers(0, 100, (size[1], size[0], 3), dtype=np.uint8)
            arr[..., c] += 120
            img = Image.fromarray(arr)
            if i % 3 == 0:
                img = img.convert("L")  # grey images too
            img.save(root / "train" / f"class{c}" / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_imagefolder(tmp_path, capsys, one_thread):
    data = _imagefolder(tmp_path / "imgs")
    save = tmp_path / "run"
    args = tiny(data, save, "--no_plots")
    args[args.index("--dataset") + 1] = "imagefolder"
    args[args.index("--train_size") + 1] = 0
    code, _, err = run_cli_inprocess(gdas_cli.main, args, capsys)
    assert code == 0, err
    rows = history(save)
    assert len(rows) == 2
    ckpt = torch.load(save / "checkpoint.pt", weights_only=True)
    assert ckpt["net"]["classifier.weight"].shape[0] == 3
    assert ckpt["settings"]["data"]["images"] == 36


@pytest.mark.parametrize("case", ["missing", "space", "unrolled", "damaged", "other_space",
                                  "no_checkpoint", "exists"])
def test_bad_input_one_line(case, cifar_root, tmp_path, capsys, one_thread):
    save = tmp_path / "run"
    args = tiny(cifar_root, save, "--no_plots")
    if case == "missing":
        args[args.index("--data") + 1] = tmp_path / "nowhere"
    elif case == "space":
        args[args.index("--space") + 1] = "nasnet-large"
    elif case == "unrolled":
        args.append("--unrolled")
    elif case in ("damaged", "other_space", "exists"):
        one = [*args, "--epochs", 1]
        assert run_cli_inprocess(gdas_cli.main, one, capsys)[0] == 0
        if case == "damaged":
            raw = (save / "checkpoint.pt").read_bytes()
            (save / "checkpoint.pt").write_bytes(raw[: len(raw) // 2])
            args.append("--resume")
        elif case == "other_space":
            ckpt = torch.load(save / "checkpoint.pt", weights_only=True)
            ckpt["space"] = "darts"
            torch.save(ckpt, save / "checkpoint.pt")
            args.append("--resume")
    elif case == "no_checkpoint":
        args.append("--resume")
    code, out, err = run_cli_inprocess(gdas_cli.main, args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    expect = {"missing": "no such folder", "space": "unknown space", "unrolled": "--unrolled",
              "damaged": "damaged", "other_space": "darts space",
              "no_checkpoint": "no search checkpoint", "exists": "already holds"}[case]
    assert expect in lines[0]


@pytest.mark.slow
def test_cli_smoke_subprocess(cifar_root, tmp_path):
    save = tmp_path / "run"
    args = [str(a) for a in tiny(cifar_root, save, "--no_plots")]
    args[args.index("--epochs") + 1] = "1"
    proc = run_script("searching/gdas/search.py", *args)
    assert proc.returncode == 0, proc.stderr
    text = (save / "arch-best.txt").read_text().strip()
    assert f"searched architecture: {text}" in proc.stdout
    bad = run_script("searching/gdas/search.py", *args, "--unrolled")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("frc", [False, True])
def test_gdas_darts_space(frc, cifar_root, tmp_path, capsys, one_thread):
    pytest.importorskip("api.spaces.darts.supernet", reason="the DARTS supernet is not here")
    from api.spaces.arch_io import load_arch

    save = tmp_path / "run"
    args = tiny(cifar_root, save, "--no_plots", *(["--frc"] if frc else []))
    args[args.index("--space") + 1] = "darts"
    args[args.index("--layers") + 1] = 3
    args[args.index("--epochs") + 1] = 1
    code, _, err = run_cli_inprocess(gdas_cli.main, args, capsys)
    assert code == 0, err
    arch = load_arch(str(save / "arch-best"))
    assert arch.space == "darts"
    assert (save / "arch-best.txt").read_text().startswith("Genotype(")
    cells = history(save)[0]["edge_weights"]
    assert sorted(cells) == (["normal"] if frc else ["normal", "reduce"])
    assert np.asarray(cells["normal"]).shape == (14, 8)
