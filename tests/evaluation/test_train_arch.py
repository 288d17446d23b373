"""Training any architecture: model_info.py's figures, train_cifar /
train_imagenet with --arch for DARTS-family and NAS-Bench-201 cells (auxiliary head, drop-path,
recipes, resume from the recorded architecture, validate), the --graph_path alias, the GDAS
seed's two scripts, and bad input in one line. Tiny networks, 1-2 epochs, CPU."""
import csv
import gzip
import json
import os
import subprocess

import pytest

from api.runs.atomic_io import read_jsonl
from api.train.checkpoint import load_checkpoint
from tests.conftest import REPO, SHARED_DATA, run_cli_inprocess, run_script, write_cifar10

NB201_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
TINY_DARTS = ["--C", "4", "--layers", "3", "--batch_size", "32", "--quiet", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_batch=16, test=32)


def nb201_space():
    from api.spaces import SPACE_CLASSES, get_space

    if "nas-bench-201" not in SPACE_CLASSES:
        pytest.skip("the nas-bench-201 space is not registered yet")
    return get_space("nas-bench-201")


def model_info(capsys, *argv):
    from evaluation.model_info import main

    return run_cli_inprocess(main, list(argv), capsys)


def train_cifar(capsys, *argv):
    from evaluation.cnn.train_cifar import main

    return run_cli_inprocess(main, [str(a) for a in argv], capsys)


# --------------------------------------------------------------------------- model_info
@pytest.mark.parametrize("dataset,last", [
    ("cifar10", "params=3.349342M macs=528.359040M"),    # DARTS's 3.3M (C=36, 20 cells)
    ("imagenet", "params=4.718752M macs=529.911552M"),   # DARTS's 4.7M (C=48, 14 cells)
])
def test_model_info_darts_v2(capsys, dataset, last):
    code, out, err = model_info(capsys, "--arch", "darts-v2", "--dataset", dataset)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == last
    assert lines[0] == "space: darts" and "sep_conv_3x3" in lines[1]
    assert ("NetworkImageNet(C=48, layers=14" if dataset == "imagenet"
            else "NetworkCIFAR(C=36, layers=20") in out


@pytest.mark.slow
def test_model_info_as_a_script_with_gdas_flags():
    """The subprocess smoke test: GDAS's --input form and a smaller network."""
    proc = run_script("evaluation/model_info.py", "--arch", "gdas-v1", "--C", "16",
                      "--layers", "8", "--input", "1", "3", "32", "32", check=True)
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "space: darts" and "NetworkCIFAR(C=16, layers=8" in proc.stdout
    assert lines[-1].startswith("params=") and lines[-1].count("M") == 2


def _benchmark_row(arch):
    table = SHARED_DATA / "nasbench201" / "nb201.csv.gz"
    if not table.is_file():
        return None
    with gzip.open(table, "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["arch"] == arch:
                return row
    raise AssertionError(f"{arch} not in {table}")


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "imagenet16"])
def test_model_info_nb201_is_the_benchmarks_count(capsys, dataset):
    space = nb201_space()
    code, out, err = model_info(capsys, "--arch", NB201_CELL, "--dataset", dataset)
    assert code == 0, err
    params, flops = space.count(space.parse(NB201_CELL), dataset)
    assert out.strip().splitlines()[-1] == f"params={params / 1e6:.6f}M macs={flops / 1e6:.6f}M"
    row = _benchmark_row(NB201_CELL)
    if row is not None:  # the benchmark's own columns (../shared/data/nasbench201)
        assert round(params / 1e6, 6) == float(row[f"params_M_{dataset}"])
        assert round(flops / 1e6, 5) == pytest.approx(float(row[f"flops_M_{dataset}"]),
                                                      abs=1e-5)


@pytest.mark.parametrize("case", ["unknown_preset", "malformed_genotype", "op_outside_space",
                                  "foreign_file", "unknown_dataset", "width_for_rnn_cell",
                                  "width_for_autoshrink"])
def test_model_info_bad_input_is_one_line(tmp_path, capsys, case):
    argv = {
        "unknown_preset": ["--arch", "darts-v9"],
        "malformed_genotype": ["--arch", "Genotype(normal=[('sep_conv_3x3', 0)], "
                                         "normal_concat=[2], reduce=[, reduce_concat=[2])"],
        "op_outside_space": ["--arch", "Genotype(normal=[('conv_9x9', 0), ('skip_connect', 1)], "
                                       "normal_concat=[2], reduce=[('max_pool_3x3', 0), "
                                       "('skip_connect', 1)], reduce_concat=[2])"],
        "foreign_file": ["--arch", str(tmp_path / "foreign.json")],
        "unknown_dataset": ["--arch", "darts-v2", "--dataset", "mnist"],
        "width_for_rnn_cell": ["--arch", "darts-ptb", "--C", "8"],
        "width_for_autoshrink": ["--arch", "shrinkcnn-a", "--C", "8"],
    }[case]
    (tmp_path / "foreign.json").write_text(json.dumps({"weights": [1, 2, 3]}))
    code, out, err = model_info(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_model_info_reports_rnn_cells_language_models(capsys):
    """RNN cells report their PTB language model at their space's own size: params (tied
    embedding once) and the MACs of one word (cell and decoder matmuls)."""
    from api.spaces.zoo import get_graph
    from api.spaces.autoshrink_rnn.cost import rnn_lm_params

    expected = {"shrinkrnn": rnn_lm_params(get_graph("shrinkrnn"), 10000, 745, 745),
                "darts-ptb": 10000 * 850 + 1700 * 1700 + 8 * 850 * 1700 + 10000,
                "enas-ptb": 10000 * 748 + 1496 * 1496 + 11 * 748 * 1496}  # 12 nodes, no bias
    for name, params in expected.items():
        code, out, err = model_info(capsys, "--arch", name)
        assert code == 0, err
        assert out.splitlines()[-1].startswith(f"params={params / 1e6:.6f}M macs=")
    code, out, _ = model_info(capsys, "--arch", "darts-ptb", "--emsize", "100", "--ntokens",
                              "50")
    assert out.splitlines()[-1] == (f"params={(50 * 100 + 200 * 200 + 8 * 100 * 200 + 50) / 1e6:.6f}M "
                                    f"macs={(200 * 200 + 8 * 100 * 200 + 100 * 50) / 1e6:.6f}M")


# --------------------------------------------------------------------------- train_cifar
def test_darts_cell_trains_with_auxiliary_head_and_drop_path(tmp_path, tiny_cifar, capsys,
                                                              monkeypatch):
    """darts-v2 in a tiny NetworkCIFAR: DARTS's recipe by default (aux 0.4, drop-path 0.2
    ramped per epoch, cutout, clip 5, decay on every parameter); the checkpoint records the
    architecture, so --resume needs no --arch and validate.py rebuilds the network."""
    import api.spaces.darts.network as darts_net
    from evaluation.cnn.validate import main as validate

    seen_p, aux_calls = [], []
    real_drop, real_aux = darts_net.drop_path, darts_net.AuxiliaryHeadCIFAR.forward
    monkeypatch.setattr(darts_net, "drop_path",
                        lambda x, p: seen_p.append(round(p, 6)) or real_drop(x, p))
    monkeypatch.setattr(darts_net.AuxiliaryHeadCIFAR, "forward",
                        lambda self, x: aux_calls.append(1) or real_aux(self, x))
    out = tmp_path / "run"
    code, text, err = train_cifar(capsys, "--arch", "darts-v2", "--data", tiny_cifar,
                                  *TINY_DARTS, "--epochs", 1, "--output", out)
    assert code == 0, err
    assert "recipe darts" in text and "NetworkCIFAR(C=4, layers=3, auxiliary=True" in text
    assert aux_calls and not seen_p  # epoch 1 of a ramp from 0: no drop-path yet
    args = json.loads((out / "args.json").read_text())
    assert (args["recipe"], args["auxiliary_weight"], args["drop_path"], args["cutout"],
            args["grad_clip"], args["lr"], args["weight_decay"], args["weight_decay_all"]) == (
        "darts", 0.4, 0.2, 16, 5.0, 0.025, 3e-4, True)
    assert args["arch_record"]["space"] == "darts"
    state = load_checkpoint(out / "last.pt")
    record = state["arch_network"]
    assert record["space"] == "darts" and record["kwargs"] == {"auxiliary": True, "C": 4,
                                                                "layers": 3}
    assert any("auxiliary_head" in k for k in state["model"])

    # resume to a second epoch from the recorded architecture alone: drop-path now 0.2 * 1/2
    code, text, err = train_cifar(capsys, "--output", out, "--data", tiny_cifar, "--resume",
                                  "--epochs", 2, "--force", "--quiet", "--device", "cpu")
    assert code == 0, err
    assert "resumed from" in text and set(seen_p) == {0.1}
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["epoch"] == 2 and [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2]
    assert final["complexity"]["params"] == state["complexity"]["params"] > 0

    validate(["--checkpoint", str(out), "--data", str(tiny_cifar), "--out",
              str(tmp_path / "val.json")])
    val = json.loads((tmp_path / "val.json").read_text())
    assert val["top1"] == pytest.approx(final["top1"]) and val["images"] == 32


def test_recipe_flags_override_and_resume_refuses_another_arch(tmp_path, tiny_cifar, capsys):
    out = tmp_path / "run"
    code, _, err = train_cifar(capsys, "--arch", "gdas-v1", "--data", tiny_cifar, *TINY_DARTS,
                               "--epochs", 1, "--auxiliary_weight", 0, "--drop_path_prob",
                               "0.3", "--output", out)
    assert code == 0, err
    args = json.loads((out / "args.json").read_text())
    assert args["auxiliary_weight"] == 0 and args["drop_path"] == 0.3
    assert not any("auxiliary_head" in k for k in load_checkpoint(out / "last.pt")["model"])
    code, _, err = train_cifar(capsys, "--arch", "darts-v2", "--output", out, "--data",
                               tiny_cifar, "--resume", "--epochs", 2, "--quiet")
    assert code == 2 and "--arch darts-v2" in err and len(err.strip().splitlines()) == 1


def test_nb201_cell_trains_with_the_benchmark_recipe(tmp_path, tiny_cifar, capsys):
    space = nb201_space()
    out = tmp_path / "run"
    code, text, err = train_cifar(capsys, "--arch", NB201_CELL, "--C", 4, "--N", 1, "--data",
                                  tiny_cifar, "--epochs", 1, "--output", out, "--quiet",
                                  "--device", "cpu")
    assert code == 0, err
    assert "TinyNetwork(C=4, N=1)" in text and "recipe nas-bench-201" in text
    args = json.loads((out / "args.json").read_text())
    assert (args["lr"], args["nesterov"], args["momentum"], args["weight_decay"],
            args["batch_size"], args["cutout"], args["grad_clip"], args["auxiliary_weight"]) == (
        0.1, True, 0.9, 5e-4, 256, 0, 0.0, 0.0)
    state = load_checkpoint(out / "last.pt")
    assert state["optimizer"]["param_groups"][0]["nesterov"] is True
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["complexity"]["params"] == space.count(space.parse(NB201_CELL), C=4, N=1)[0]


def test_graph_path_is_an_alias_of_arch_for_autoshrink_cells(tmp_path, tiny_cifar, capsys):
    tiny = ["--scale", "0.25", "0.5", "--replicate", "1", "1", "--pool_size", "1", "2",
            "--stem_channels", "8", "--batch_size", "32", "--quiet", "--epochs", "1"]
    specs = []
    for flag in ("--graph_path", "--arch"):
        out = tmp_path / flag.strip("-")
        code, text, err = train_cifar(capsys, flag, "shrinkcnn-b", "--data", tiny_cifar, *tiny,
                                      "--output", out)
        assert code == 0, err
        assert "recipe autoshrink" in text
        args = json.loads((out / "args.json").read_text())
        assert (args["arch"], args["drop_path"], args["weight_decay_all"], args["nesterov"],
                args["auxiliary_weight"]) == ("shrinkcnn-b", 0.0, False, False, 0.0)
        state = load_checkpoint(out / "last.pt")
        assert "arch_network" not in state
        specs.append(state["model_spec"])
    assert specs[0] == specs[1] and specs[0]["network"]["activation"] == "swish"


@pytest.mark.parametrize("argv,message", [
    (["--arch", "darts-v2", "--scale", "1", "2"], "--scale"),
    (["--arch", "shrinkcnn-a", "--layers", "8"], "--layers"),
    (["--arch", NB201_CELL, "--auxiliary_weight", "0.4"], "auxiliary"),
    (["--arch", "darts-v2", "--recipe", "mine"], "invalid choice"),
    (["--arch", "nowhere/arch-best"], "not found"),
    (["--data", "{data}"], "--arch"),
])
def test_train_cifar_bad_input_is_one_line(tmp_path, tiny_cifar, capsys, argv, message):
    argv = [a.format(data=tiny_cifar) for a in argv]
    if "--data" not in argv:
        argv += ["--data", str(tiny_cifar)]
    code, _, err = train_cifar(capsys, *argv, "--output", tmp_path / "out", "--quiet")
    if message == "invalid choice":  # argparse's own usage error: usage line + message
        assert code == 2 and message in err
        return
    code, _, err = train_cifar(capsys, *argv, "--output", tmp_path / "out", "--quiet")
    assert code == 2 and message in err, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "last.pt").exists()


# --------------------------------------------------------------------------- train_imagenet
def test_darts_cell_on_imagenet_with_the_mobile_recipe(tmp_path, capsys):
    from evaluation.cnn.train_imagenet import main
    from tests.evaluation.test_eval_imagenet import write_image_folder

    data = write_image_folder(tmp_path / "imagenet", classes=3, train=4, val=2, size=24)
    out = tmp_path / "run"
    code, text, err = run_cli_inprocess(main, [
        "--arch", "darts-v2", "--C", "4", "--layers", "3", "--image_size", "32", "--data",
        str(data), "--batch_size", "4", "--workers", "0", "--epochs", "2", "--output",
        str(out), "--quiet", "--device", "cpu"], capsys)
    assert code == 0, err
    assert "NetworkImageNet(C=4, layers=3, auxiliary=True" in text and "recipe darts: sgd" in text
    args = json.loads((out / "args.json").read_text())
    assert (args["optimizer"], args["schedule"], args["lr_decay"], args["weight_decay"],
            args["label_smoothing"], args["auxiliary_weight"], args["ema_decay"],
            args["grad_clip"], args["num_classes"]) == (
        "sgd", "exponential", 0.97, 3e-5, 0.1, 0.4, 0.0, 5.0, None)
    records = read_jsonl(out / "metrics.jsonl")
    lr0 = 0.1 * 4 / 128  # lr per 128 images, scaled by the batch
    assert records[0]["lr"] == pytest.approx(lr0 * 0.97)  # after epoch 1's last step
    assert records[1]["lr"] == pytest.approx(lr0 * 0.97 ** 2)
    assert load_checkpoint(out / "last.pt")["arch_network"]["num_classes"] == 3


def test_epoch_decay_schedule():
    import torch

    from api.train.arch_train import EpochDecayLR

    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1)
    sched = EpochDecayLR(opt, steps_per_epoch=3, gamma=0.5)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025])
    fresh = torch.optim.SGD([w], lr=0.1)  # resume: a new optimizer, then the saved state
    again = EpochDecayLR(fresh, 3, 0.5)
    again.load_state_dict(sched.state_dict())
    assert fresh.param_groups[0]["lr"] == pytest.approx(0.025)


# --------------------------------------------------------------------------- the seed's scripts
def bash(script, *args, env=None, timeout=300):
    return subprocess.run(["bash", str(REPO / "scripts" / script), *map(str, args)], cwd=REPO,
                          env=dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
                                   **(env or {})),
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_nb201_train_a_net_script(tmp_path, tiny_cifar):
    nb201_space()
    proc = bash("NAS-Bench-201/train-a-net.sh", NB201_CELL, 4, 1, "--quiet",
                env={"EPOCHS": "1", "DATA": str(tiny_cifar), "OUT": str(tmp_path / "nb")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"{NB201_CELL}: test accuracy ") and "after 1 epochs" in last
    assert "params 0.011054M" in last  # TinyNetwork C=4 N=1 (the benchmark's count)
    assert json.loads((tmp_path / "nb" / "args.json").read_text())["seed"] == 777


@pytest.mark.slow
def test_nas_infer_train_script(tmp_path, tiny_cifar):
    proc = bash("nas-infer-train.sh", "cifar10", "GDAS_V1", 32, -1, "--C", 4, "--layers", 3,
                "--quiet", env={"EPOCHS": "1", "DATA": str(tiny_cifar),
                                "OUT": str(tmp_path / "gdas")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    seed = int(lines[0].split()[1])
    assert lines[0].startswith("seed: ") and "random" in lines[0]
    assert lines[-1].startswith("gdas-v1 on cifar10: test accuracy ")
    args = json.loads((tmp_path / "gdas" / "args.json").read_text())
    assert (args["seed"], args["batch_size"], args["arch"], args["recipe"]) == (
        seed, 32, "gdas-v1", "darts")

    bad = bash("nas-infer-train.sh", "cifar10", "GDAS_V1")
    assert bad.returncode == 2 and "usage" in bad.stderr
    bad = bash("nas-infer-train.sh", "mnist", "GDAS_V1", 96, 1)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: ")
