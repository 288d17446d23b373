"""NAO-WS search CLI (searching/nao/train_search.py) on a tiny synthetic CIFAR-10, and
``--fixed_arc`` in the CIFAR trainer: outputs, model_info builds the found cell, same seed =
same pool, kill + resume = the uninterrupted search, bad input is one line and exit 2, the
seed's NAO scripts."""
from __future__ import annotations

import os
import subprocess

import pytest

from api.spaces.nao.presets import NAONET_A, NAONET_B
from tests.conftest import (REPO, assert_same_oneshot_search, oneshot_history, run_cli_inprocess,
                      run_script, run_search_until_death)
from searching.nao.pool import read_arch_pool, read_perf, read_pool

TINY = ["--epochs", "2", "--iterations", "1", "--seed_arch", "6", "--new_arch", "2",
        "--random_arch", "1", "--controller_epochs", "3", "--batch_size", "16",
        "--eval_batch_size", "8", "--init_channels", "4", "--layers", "1", "--train_size", "60",
        "--max_step", "10",
        "--seed", "1", "--quiet", "--no_plots"]
POOL_FILES = ("arch_pool", "arch_pool.perf", "arch_pool.1", "arch_pool.perf.1", "arch_pool.2",
              "arch_pool.perf.2", "arch_pool.final", "arch_pool.scores")
OUTPUTS = POOL_FILES + ("arch-best", "arch-best.json", "arch-best.txt", "history.jsonl",
                        "summary.json", "search.log", "args.json", "checkpoint.pt")


@pytest.fixture(scope="module")
def whole(cifar_root, tmp_path_factory):
    """One uninterrupted tiny search, run as a user would (the CLI's subprocess smoke test)."""
    root = tmp_path_factory.mktemp("nao") / "whole"
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the in-process runs' one thread: same floats
    try:
        proc = run_script("searching/nao/train_search.py", "--data", str(cifar_root),
                          "--save", str(root), *TINY, check=True)
    finally:
        if saved is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    assert "searched architecture:" in proc.stdout
    return root


@pytest.mark.slow
def test_outputs_and_found_cell(whole, capsys):
    import json

    from evaluation import model_info

    for name in OUTPUTS:
        assert (whole / name).is_file(), name
    pool, final = read_pool(whole / "arch_pool.scores"), read_arch_pool(whole / "arch_pool.final")
    assert len(pool) == 6 and final == [e.arch for e in pool[:5]]
    assert [e.measured for e in pool] == sorted((e.measured for e in pool), reverse=True)
    # NAO's files: the last evaluation's pool, best first, and its error rates
    assert read_arch_pool(whole / "arch_pool") == [e.arch for e in pool]
    assert read_perf(whole / "arch_pool.perf") == [1.0 - e.measured for e in pool]
    assert (whole / "arch_pool.2").read_bytes() == (whole / "arch_pool").read_bytes()
    assert all(e.predicted == e.predicted for e in pool)  # the last controller predicted all
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["method"] == "nao-ws" and summary["space"] == "enas-micro"
    assert summary["arch"] == pool[0].arch.to_string() == (whole / "arch-best.txt").read_text().strip()
    assert summary["search_seconds"] > 0 and summary["finished"]
    history = oneshot_history(whole)
    assert [r["epoch"] for r in history] == [1, 2]
    assert history[0]["random_archs"] == 1 and 1 <= history[0]["step_size"] <= 10
    assert 1 <= history[0]["new_archs"] <= 2  # (a 3-epoch controller may find fewer)
    assert "pool_predicted_pairwise_acc" in history[1]
    code, out, err = run_cli_inprocess(model_info.main, ["--arch", whole / "arch-best.json",
                                                         "--C", "8", "--layers", "5"], capsys)
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("params=")


@pytest.mark.slow
def test_same_seed_same_pool_and_resume_after_kill(whole, cifar_root, tmp_path, capsys,
                                                   monkeypatch, one_thread):
    from searching.nao.train_search import main

    cut = tmp_path / "cut"
    args = ["--data", str(cifar_root), "--save", str(cut), *TINY]
    # dies right after epoch 1's checkpoint (pool evaluated, controller trained, pool grown)
    files = run_search_until_death(main, args, "epoch:1", cut, capsys, monkeypatch)
    assert "arch_pool" in files and "checkpoint.pt" in files
    # after the update arch_pool holds the next pool (NAO's), the one evaluated last
    next_pool = read_arch_pool(cut / "arch_pool")
    assert next_pool != read_arch_pool(cut / "arch_pool.1")
    assert sorted(a.to_list() for a in next_pool) == sorted(
        a.to_list() for a in read_arch_pool(whole / "arch_pool.2"))
    code, _, err = run_cli_inprocess(main, [*args, "--resume"], capsys)
    assert code == 0, err
    assert_same_oneshot_search(cut, whole)
    for name in POOL_FILES:
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name


@pytest.mark.parametrize("fixed_arc, message", [
    ("0 1 0 2", "has 40 integers"),
    (NAONET_B.replace("0 1 0 2", "0 1 0 16", 1), "has op 16; ops are 0..15"),
    (NAONET_B.replace("0 1 0 2", "0 1 2 2", 1), "reads input 2; it may read 0..1"),
    (NAONET_B.replace("0 1", "0 x", 1), "not an integer"),
])
def test_bad_fixed_arc_is_one_line(fixed_arc, message, cifar_root, tmp_path, capsys):
    from evaluation.cnn.train_cifar import main

    code, out, err = run_cli_inprocess(main, ["--fixed_arc", fixed_arc, "--data", cifar_root,
                                              "--output", tmp_path / "run"], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("flags, message", [
    (["--iterations", "0"], "--iterations must be at least 1"),
    (["--epochs", "1"], "cannot hold --iterations 1"),
    (["--new_arch", "5"], "must be below --seed_arch 6"),
    (["--valid_fraction", "1"], "--valid_fraction must be in (0, 1)"),
    (["--child_arch_pool", "/nonexistent/arch_pool"], "cannot read the architecture pool"),
    (["--controller_mlp_dropout", "1"], "--controller_mlp_dropout must be in [0, 1)"),
])
def test_bad_search_flags_are_one_line(flags, message, cifar_root, tmp_path, capsys):
    from searching.nao.train_search import main

    code, _, err = run_cli_inprocess(main, ["--data", cifar_root, "--save", tmp_path / "s",
                                            *TINY, *flags], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


@pytest.mark.slow
def test_fixed_arc_picks_the_space_and_the_scripts_pass_the_zoo_cells(tmp_path):
    from api.train.arch_train import fixed_arc
    from api.spaces.nao.presets import NAONET_WS

    assert fixed_arc(NAONET_A).space == "nao" and fixed_arc(NAONET_B).space == "enas-micro"
    assert fixed_arc(NAONET_WS).text == NAONET_WS
    scripts = {name: (REPO / "scripts" / name).read_text() for name in (
        "train_NAONet_A_36_cifar10.sh", "train_NAONet_B_36_cifar10.sh",
        "train_NAONet_A_128_cifar10_4cards.sh", "train_NAONet_A_imagenet.sh",
        "train_search_NAO-WS_cifar10.sh")}
    for name, text in scripts.items():
        subprocess.run(["bash", "-n", str(REPO / "scripts" / name)], check=True)
        assert "${EPOCHS:+--epochs" in text and "DATA" in text, name
    for name in ("train_NAONet_A_36_cifar10.sh", "train_NAONet_A_128_cifar10_4cards.sh",
                 "train_NAONet_A_imagenet.sh"):
        assert f'"{NAONET_A}"' in scripts[name], name
    assert f'"{NAONET_B}"' in scripts["train_NAONet_B_36_cifar10.sh"]
    assert "torchrun" in scripts["train_NAONet_A_128_cifar10_4cards.sh"]


@pytest.mark.slow
def test_child_arch_pool_starts_from_a_naos_pool_file(cifar_root, tmp_path, capsys, one_thread):
    """An arch_pool written as NAO writes it (``' '.join`` of the 40 integers a line) is the
    first pool; a pool too small for the update is one line."""
    import torch

    from searching.nao.pool import random_archs
    from searching.nao.train_search import main

    archs = random_archs(5, torch.Generator().manual_seed(9))
    given = tmp_path / "given_pool"
    given.write_text("".join(" ".join(map(str, a.normal + a.reduce)) + "\n" for a in archs))
    code, _, err = run_cli_inprocess(main, ["--data", cifar_root, "--save", tmp_path / "s",
                                            *TINY, "--child_arch_pool", given], capsys)
    assert code == 0, err
    first = read_arch_pool(tmp_path / "s" / "arch_pool.1")
    assert sorted(a.to_list() for a in first) == sorted(a.to_list() for a in archs)
    code, _, err = run_cli_inprocess(main, ["--data", cifar_root, "--save", tmp_path / "t",
                                            *TINY, "--child_arch_pool", given,
                                            "--new_arch", "4"], capsys)
    assert code == 2 and err.count("\n") == 1 and "the 5 architectures of --child_arch_pool" in err
