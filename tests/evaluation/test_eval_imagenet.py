"""The ImageNet half of the evaluation as a user runs it, at toy scale on CPU: build_imagenet,
train_imagenet (single process, --resume, torchrun with two gloo ranks), validate, bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from api.runs.atomic_io import read_jsonl
from api.train.checkpoint import load_checkpoint
from api.errors import UserError
from api.spaces.dag.graph_io import save_graph
from tests.conftest import REPO, run_cli_inprocess
from tests.api.train.test_eval_components import search_graph

TRAIN = "evaluation/cnn/train_imagenet.py"
TINY_NET = ["--scale", "0.25", "0.5", "--replicate", "1", "1", "--pool_size", "1", "2",
            "--image_size", "16", "--stem_channels", "8", "--head_channels", "32"]
TINY_RUN = ["--batch_size", "8", "--lr", "2.0", "--warmup_epochs", "1", "--workers", "0",
            "--quiet"]


def write_image_folder(root, classes=3, train=12, val=4, size=20, seed=0):
    """Real JPEG files in the ImageFolder layout; class c is tinted towards colour c."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    tints = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                img = rng.integers(0, 90, (size, size, 3)) + 0.6 * tints[c % len(tints)]
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{k}.JPEG")
    return root


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagenet"))


pytestmark = pytest.mark.usefixtures("one_thread")


def train(*args):
    from evaluation.cnn.train_imagenet import main

    main([str(a) for a in args])


def test_build_imagenet_prints_paper_figures(tmp_path, capsys):
    from evaluation.cnn.build_imagenet import main

    out = tmp_path / "spec.json"
    main(["--graph_path", "shrinkcnn-a", "--scale", "0.5", "1", "2", "4", "8",
          "--channel_scale", "1.4", "--replicate", "1", "3", "4", "6", "4", "--pool_size", "1",
          "2", "2", "2", "2", "--use_residual", "--image_size", "224", "--out", str(out)])
    text = capsys.readouterr().out
    assert "3.601M excluding BN" in text and "3.636M with BN" in text
    assert "383.7M at 224x224" in text
    spec = json.loads(out.read_text())
    assert spec["regularizer"] == 4e-5 and spec["network"]["activation"] == "relu"
    assert spec["complexity"]["params"] == pytest.approx(3.601e6, rel=5e-4)


def test_train_resume_validate_end_to_end(tmp_path, imagenet_root, monkeypatch, capsys):
    from api.train.trainer import Trainer
    from evaluation.cnn.build_imagenet import main as build
    from evaluation.cnn.validate import main as validate

    spec = tmp_path / "spec.json"
    build(["--graph_path", "shrinkcnn-b", *TINY_NET, "--num_classes", "3", "--out", str(spec)])
    out = tmp_path / "run"
    common = ["--model_spec", spec, "--data", imagenet_root, "--output", out, "--epochs", 4,
              *TINY_RUN]
    real_epoch = Trainer.train_epoch

    def crash_at_third(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt  # killed after two finished epochs
        return real_epoch(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_at_third)
    with pytest.raises(KeyboardInterrupt):
        train(*common)
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    with pytest.raises(UserError, match="--label_smoothing 0.2 .*--force"):  # a recipe flag
        train(*common, "--resume", "--label_smoothing", "0.2")
    train(*common, "--resume", "--workers", "0", "--val_batch_size", "5")  # runtime flags
    text = capsys.readouterr().out
    assert "resumed from" in text and "after epoch 2" in text
    assert "final val top-1" in text and not (out / "best.pt").exists()

    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    straight = tmp_path / "straight"  # the same run, uninterrupted: resume is exact
    train(*common[:5], straight, *common[6:])
    for a, b in zip(read_jsonl(straight / "metrics.jsonl"), records):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["ema_top1"] == b["ema_top1"]
    for key in ("top1", "top5", "ema_top1", "lr", "images_per_s"):
        assert key in records[-1]
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["epochs"] == 4 and final["steps"] == 4 * (36 // 8)
    state = load_checkpoint(out / "last.pt")
    assert {"model", "ema", "optimizer", "scheduler", "rng", "step"} <= set(state)
    assert state["model_spec"]["network"]["activation"] == "swish"

    validate(["--checkpoint", str(out), "--data", str(imagenet_root), "--ema", "--workers", "0",
              "--out", str(tmp_path / "val.json")])
    val = json.loads((tmp_path / "val.json").read_text())
    assert val["images"] == 12 and val["top1"] == pytest.approx(final["ema_top1"])


def test_search_graph_best_trains_in_the_imagenet_network(tmp_path, imagenet_root):
    save_graph(search_graph("swish"), str(tmp_path / "graph-best"), png=False)
    for name in ("graph-best", "graph-best.json"):
        out = tmp_path / f"run-{name}"
        train("--graph_path", tmp_path / name, *TINY_NET, "--data", imagenet_root, "--output",
              out, "--epochs", 1, *TINY_RUN)
        net = load_checkpoint(out / "last.pt")["model_spec"]["network"]
        # the trainer's network (stem stride 2, 1001 classes), not the proxy's skeleton
        assert net["stem_stride"] == 2 and net["num_classes"] == 1001
        assert net["activation"] == "swish" and net["scale"] == [0.25, 0.5]


@pytest.mark.slow
def test_torchrun_two_gloo_ranks(tmp_path):
    """Two gloo ranks: validation shards count every val image exactly once (9 images, an odd
    number: a padded or overlapping split would count 10 or more), and both ranks hold the
    same weights after training (the per-rank digests last.pt records are equal, and are the
    digest of the weights it holds)."""
    from api.spaces.autoshrink_cnn.model_spec import ModelSpec
    from api.train.trainer import param_digest

    root = write_image_folder(tmp_path / "imagenet", train=8, val=3)
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(REPO / TRAIN), "--graph_path", "shrinkcnn-a", *TINY_NET, "--num_classes", "3",
         "--data", str(root), "--output", str(out), "--epochs", "2", "--batch_size",
         "4", "--lr", "2.0", "--warmup_epochs", "1", "--workers", "0", "--quiet",
         "--device", "cpu"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 process(es)" in proc.stdout and "warning" not in proc.stdout
    state = load_checkpoint(out / "last.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    records = read_jsonl(out / "metrics.jsonl")
    assert len(records) == 2 and records[-1]["images_per_s"] > 0
    assert [r["val_images"] for r in records] == [9, 9]
    assert json.loads((out / "final_metrics.json").read_text())["val_images"] == 9
    digests = state["param_digests"]
    model = ModelSpec.from_dict(state["model_spec"]).build()
    model.load_state_dict(state["model"])
    assert len(digests) == 2 and digests[0] == digests[1] == param_digest(model)


@pytest.mark.parametrize("case", ["missing_graph", "bad_data", "rnn_graph"])
def test_bad_input_is_one_line(tmp_path, imagenet_root, case, capsys):
    """In-process: the torchrun test is this script's subprocess smoke test."""
    from evaluation.cnn.train_imagenet import main

    args = {"missing_graph": ["--graph_path", str(tmp_path / "nope"), "--data",
                              str(imagenet_root)],
            "bad_data": ["--graph_path", "shrinkcnn-a", "--data", str(tmp_path)],
            "rnn_graph": ["--graph_path", "shrinkrnn", "--data", str(imagenet_root)]}[case]
    code, _, err = run_cli_inprocess(main, [*args, "--output", str(tmp_path / "out"),
                                            "--quiet"], capsys)
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
