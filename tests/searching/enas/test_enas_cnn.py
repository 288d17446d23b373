"""ENAS CNN search: the macro and micro searches through
searching/enas/main.py, their controllers, the enas-macro space, and the found networks."""
from __future__ import annotations

import json
import math

import pytest
import torch

from tests.conftest import (assert_same_oneshot_search, oneshot_history, run_cli_inprocess,
                            run_script, run_search_until_death)

TINY = ["--controller_max_step", "2", "--controller_num_aggregate", "2",
        "--derive_num_sample", "2", "--batch_size", "16", "--train_size", "40",
        "--child_out_filters", "4", "--quiet", "--no_plots", "--device", "cpu"]
MICRO = ["--network_type", "cnn", "--dataset", "cifar", "--cnn_space", "micro",
         "--child_num_layers", "1", *TINY]
#: the seed's CNN command verbatim (macro by default), then the test's sizes
SEED_CNN = ["--network_type", "cnn", "--dataset", "cifar", "--controller_optim", "momentum",
            "--controller_lr_cosine=True", "--controller_lr_max", "0.05",
            "--controller_lr_min", "0.0001", "--entropy_coeff", "0.1"]
MACRO = [*SEED_CNN, "--child_num_layers", "4", *TINY]


def enas_main():
    from searching.enas.main import main
    return main


def search(capsys, root, data, args, epochs=2, seed=7, extra=()):
    code, out, err = run_cli_inprocess(enas_main(), [*args, "--data", data, "--save", root,
                                                     "--max_epoch", epochs, "--seed", seed,
                                                     *extra], capsys)
    assert code == 0, err
    return out


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


# ------------------------------------------------------------------------- searches
def test_micro_search_outputs_and_found_cell(tmp_path, cifar_root, capsys):
    from api.spaces import get_space
    from api.spaces.arch_io import load_arch

    root = tmp_path / "micro"
    out = search(capsys, root, cifar_root, MICRO)
    text = (root / "arch-best.txt").read_text().split()
    assert len(text) == 40 and all(t.isdigit() for t in text)
    arch = load_arch(str(root / "arch-best.txt"))
    assert arch.space == "enas-micro" and f"(enas-micro): {arch.text}" in out
    rows = oneshot_history(root)
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert {"reward", "entropy", "baseline", "val_acc", "train_loss", "derive_acc",
                "controller_lr"} <= set(r)
        assert 0.0 <= r["val_acc"] <= 1.0 and r["entropy"] > 0
        assert r["reward"] == pytest.approx(r["val_acc"] + 1e-4 * r["entropy"])
    assert rows[0]["lr"] == 0.05 and rows[1]["lr"] == pytest.approx(
        0.0005 + 0.5 * 0.0495 * (1 + math.cos(math.pi / 10)))
    summary = json.loads((root / "summary.json").read_text())
    assert summary["method"] == "enas-micro" and summary["search_seconds"] > 0
    args = json.loads((root / "args.json").read_text())
    assert (args["controller_lr"], args["tanh_c"], args["ema_baseline_decay"],
            args["controller_hid"], args["child_l2_reg"]) == (3.5e-3, 1.10, 0.99, 64, 1e-4)
    # the found cell goes to evaluation/: DARTS's NetworkCIFAR builds and counts it
    params, macs = get_space("enas-micro").count(arch.value, C=4, layers=5)
    assert params > 0 and macs > 0


def test_seed_cnn_command_searches_macro_and_the_network_trains(tmp_path, cifar_root,
                                                                capsys):
    from api.spaces.arch_io import load_arch
    from evaluation.cnn.train_cifar import main as train_cifar
    from evaluation.model_info import main as model_info

    root = tmp_path / "macro"
    search(capsys, root, cifar_root, MACRO, epochs=1)
    arch = load_arch(str(root / "arch-best.txt"))
    assert arch.space == "enas-macro" and arch.value.num_layers == 4
    assert len((root / "arch-best.txt").read_text().split()) == 10  # 4 ops + 6 skip bits
    row = oneshot_history(root)[0]
    assert 0.0 <= row["skip_rate"] <= 1.0 and "baseline" in row
    args = json.loads((root / "args.json").read_text())
    assert (args["controller_optim"], args["controller_lr_cosine"], args["entropy_coeff"],
            args["tanh_c"], args["controller_skip_target"]) == ("momentum", True, 0.1, 1.5, 0.4)
    code, out, err = run_cli_inprocess(model_info, ["--arch", root / "arch-best.txt"], capsys)
    assert code == 0 and "EnasMacroNetwork(C=96, layers=4" in out, err
    code, out, err = run_cli_inprocess(train_cifar, [
        "--arch", root / "arch-best.txt", "--data", cifar_root, "--C", "4", "--epochs", "1",
        "--batch_size", "64", "--output", tmp_path / "train", "--quiet", "--device", "cpu"],
        capsys)
    assert code == 0, err
    assert "EnasMacroNetwork(C=4, layers=4" in out
    assert (tmp_path / "train" / "final_metrics.json").is_file()


@pytest.mark.slow
def test_same_seed_same_samples_and_resume_after_kill(tmp_path, cifar_root, capsys,
                                                      monkeypatch):
    whole, again, cut = tmp_path / "whole", tmp_path / "again", tmp_path / "cut"
    search(capsys, whole, cifar_root, MICRO)
    search(capsys, again, cifar_root, MICRO)
    assert oneshot_history(whole) == oneshot_history(again)  # samples, rewards, the cell
    argv = [*MICRO, "--data", cifar_root, "--save", cut, "--max_epoch", 2, "--seed", 7,
            "--checkpoint_minutes", "0"]
    run_search_until_death(enas_main(), argv, "step:4", cut, capsys, monkeypatch)  # epoch 2
    code, _, err = run_cli_inprocess(enas_main(), [*argv, "--resume"], capsys)
    assert code == 0, err
    states = assert_same_oneshot_search(cut, whole)
    for key, value in states["whole"]["method_state"]["controller"].items():
        assert torch.equal(states["cut"]["method_state"]["controller"][key], value), key


@pytest.mark.slow
def test_bad_input_is_one_line(tmp_path, cifar_root, capsys):
    cases = [(["--cnn_space", "mezzo"], "--cnn_space 'mezzo' is not one of macro, micro"),
             (["--controller_optim", "rmsprop"], "--controller_optim 'rmsprop'"),
             (["--cnn_space", "micro", "--child_num_cells", "4"], "5 nodes per cell"),
             (["--valid_fraction", "1.5"], "--valid_fraction"),
             (["--data", tmp_path], "neither CIFAR python batches")]
    for extra, message in cases:
        argv = ["--network_type", "cnn", "--data", cifar_root, "--save", tmp_path / "x",
                *extra]
        code, out, err = run_cli_inprocess(enas_main(), argv, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    proc = run_script("searching/enas/main.py", "--network_type", "cnn", "--cnn_space",
                      "mezzo", "--data", str(cifar_root))
    assert proc.returncode == 2 and "--cnn_space 'mezzo'" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------- parts
def test_controllers_sample_valid_reproducible_architectures():
    from api.spaces.enas_macro.arch import MacroArch
    from api.spaces.enas_micro.arch import MicroArch
    from searching.enas.cnn_controllers import MacroController, MicroController

    torch.manual_seed(0)
    micro, macro = MicroController(lstm_size=16), MacroController(lstm_size=16, num_layers=5)
    for ctrl, kind in ((micro, MicroArch), (macro, MacroArch)):
        a = [ctrl.sample(torch.Generator().manual_seed(3)) for _ in range(2)]
        assert isinstance(a[0].arch, kind) and a[0].arch == a[1].arch
        assert torch.equal(a[0].log_prob, a[1].log_prob) and a[0].entropy > 0
        a[0].log_prob.backward()
        assert ctrl.w_lstm.grad is not None and ctrl.w_lstm.grad.abs().sum() > 0
    # ENAS's op biases favour the sep convs in the normal cell: p = 4 / (4 + 3 e^-0.94) = 0.63
    ops = [micro.sample(torch.Generator().manual_seed(s)).arch.normal[1::2] for s in range(5)]
    assert sum(o in (0, 1) for cell in ops for o in cell) > 0.5 * sum(len(c) for c in ops)
    s = macro.sample(torch.Generator().manual_seed(1))
    assert s.skip_penalty.requires_grad and s.skip_count == s.arch.skip_count()


def test_sgdr_schedule_restarts():
    from searching.enas.cnn_method import sgdr_lr

    lrs = [sgdr_lr(e, 0.05, 0.0005, 10, 2) for e in range(151)]
    assert lrs[0] == lrs[10] == lrs[30] == lrs[70] == lrs[150] == 0.05
    assert lrs[9] < lrs[8] < 0.01 and lrs[20] == pytest.approx(0.02525)


def test_macro_space_formats_and_networks(tmp_path):
    from api.errors import UserError
    from api.spaces import get_space
    from api.spaces.arch_io import load_arch, parse_arch, save_arch

    space = get_space("enas-macro")
    # ENAS's published macro fixed_arc (cifar10_macro_final.sh, 24 layers, ops 0-3)
    final = [[0], [3, 0], [0, 1, 0], [2, 0, 0, 1], [2, 0, 0, 0, 0], [3, 1, 1, 0, 1, 0]]
    text = " ".join(str(v) for row in final for v in row)
    arch = parse_arch(text)
    assert arch.space == "enas-macro" and arch.value.num_layers == 6
    assert space.format(arch.value) == text
    assert space.from_json(json.loads(json.dumps(space.to_json(arch.value)))) == arch.value
    save_arch(arch, str(tmp_path / "a"))
    assert load_arch(str(tmp_path / "a")).value == arch.value
    assert load_arch(str(tmp_path / "a.txt")).value == arch.value
    assert parse_arch(" ".join(["0"] * 40)).space == "enas-micro"  # no clash
    net = space.build_network(arch.value, C=4)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    sup = space.supernet("cifar100", C=4, layers=6)
    assert sup(torch.randn(2, 3, 32, 32), arch.value).shape == (2, 100)
    for bad, message in (("0 3 0 1", "no such count"), ("0 6 0", "op 6"), ("0 3 2", "not 0 or 1")):
        with pytest.raises(UserError, match=message):
            space.parse(bad)
    with pytest.raises(UserError, match="6 layers"):
        space.build_network(arch.value, layers=12)


def test_image_folder_dataset(tmp_path, capsys):
    """The seed's "your own dataset": train/<class>/ and valid/<class>/ images, any size."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("valid", 3)):
        for c in ("cat", "dog"):
            folder = tmp_path / "mine" / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                    folder / f"{i}.png")
    root = tmp_path / "out"
    code, out, err = run_cli_inprocess(enas_main(), [
        "--network_type", "cnn", "--dataset", "mine", "--data", tmp_path / "mine", "--save",
        root, "--max_epoch", "1", "--seed", "1", "--child_num_layers", "3", *TINY,
        "--batch_size", "8", "--train_size", "0"], capsys)
    assert code == 0, err
    summary = json.loads((root / "summary.json").read_text())
    assert summary["dataset"] == "imagefolder" and summary["space"] == "enas-macro"
    state = torch.load(root / "checkpoint.pt", weights_only=True)
    assert state["net"]["classifier.weight"].shape[0] == 2


def test_cost_probe_projects_the_measured_steps():
    from bench.enas_cnn_cost import measure

    m = measure("micro", 1, 1, "cpu", train_images=320,
                overrides=dict(batch_size=4, child_out_filters=4, child_num_layers=1,
                               controller_num_aggregate=2, controller_max_step=3, max_epoch=5))
    assert (m["batch_size"], m["filters"], m["child_steps_per_epoch"],
            m["samples_per_controller_step"]) == (4, 4, 80, 2)
    epoch = 80 * m["seconds_per_child_step"] + 3 * m["seconds_per_controller_step"] \
        + 10 * m["seconds_per_controller_step"] / 2
    assert m["seconds_per_epoch"] == pytest.approx(epoch)
    assert m["hours"] == pytest.approx(5 * epoch / 3600) and 0 < m["measured_fraction"] < 1
