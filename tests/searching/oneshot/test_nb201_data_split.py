"""NAS-Bench-201's search data (searching/oneshot/trainer.py ``load_search_data``), as AutoDL's
``get_nas_search_loaders``: CIFAR-100 trains the weights on every training image and the
architecture on the test split's ``xvalid`` half; CIFAR-10 on two halves of the training split,
AutoDL's own halves with ``--split_file cifar-split.txt``."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from api.datasets import DeviceBatches, index_list_sha256, load_cifar
from api.errors import UserError
from searching.darts import train_search as darts_cli
from searching.oneshot.trainer import (XVALID_SEED, ImageFeed, OneShotConfig, _stats,
                                       load_search_data)
from tests.conftest import run_cli_inprocess, write_cifar10, write_cifar100

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def c100(tmp_path_factory) -> Path:
    return write_cifar100(tmp_path_factory.mktemp("cifar100-"), train=300, test=200)


@pytest.fixture(scope="module")
def c10(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar10-"), per_batch=40, test=40)


def autodl_file(path: Path, **lists) -> Path:
    """A split file in AutoDL's config format: {"key": ["int", ["1", "3", ...]]}."""
    path.write_text(json.dumps({k: ["int", [str(int(i)) for i in v]] for k, v in lists.items()}))
    return path


def cfg(root, dataset, **kw) -> OneShotConfig:
    return OneShotConfig(space=kw.pop("space", "nas-bench-201"), dataset=dataset,
                         data=str(root), batch_size=kw.pop("batch_size", 64), **kw)


def same_images(batches: DeviceBatches, x: np.ndarray, y: np.ndarray, stats_of) -> bool:
    mean, std = _stats(stats_of)
    want = DeviceBatches(x, y, mean, std, CPU)
    return torch.equal(batches.x, want.x) and torch.equal(batches.y, want.y)


def test_cifar100_weights_on_every_training_image_architecture_on_xvalid(c100, tmp_path):
    splits = load_cifar(str(c100), "cifar100")
    # without a file: a fixed class-balanced half of the test split, whatever the run's seed
    data = load_search_data(cfg(c100, "cifar100", seed=5), CPU)
    assert len(data.weights) == 300 and len(data.arch) == 100 and data.num_classes == 100
    assert same_images(data.weights, splits.train_x, splits.train_y, splits.train_x)
    arch_pixels = {bytes(r) for r in (data.arch.x * 1000).round().numpy().reshape(100, -1)}
    again = load_search_data(cfg(c100, "cifar100", seed=6), CPU)
    assert torch.equal(again.arch.x, data.arch.x)
    assert np.bincount(data.arch.y.numpy(), minlength=100).max() == 1  # class-balanced
    assert len(arch_pixels) == 100
    assert data.fingerprint["arch_from"] == "test" and f"seed {XVALID_SEED}" in data.describe
    # with AutoDL's file format: exactly its xvalid images of the test split
    xvalid = np.sort(np.random.default_rng(1).choice(200, 100, replace=False))
    xtest = np.setdiff1d(np.arange(200), xvalid)
    split = autodl_file(tmp_path / "cifar100-test-split.txt", xvalid=xvalid, xtest=xtest)
    data = load_search_data(cfg(c100, "cifar100", split_file=str(split)), CPU)
    assert same_images(data.weights, splits.train_x, splits.train_y, splits.train_x)
    assert same_images(data.arch, splits.val_x[xvalid], splits.val_y[xvalid], splits.train_x)
    assert data.fingerprint["xvalid_sha256"] == index_list_sha256(xvalid)
    assert "not AutoDL's list" in data.describe
    # one epoch = one pass over every training image: 782 steps of 64 for CIFAR-100's 50k
    feed = ImageFeed(type("S", (), {"config": cfg(c100, "cifar100"), "device": CPU})(), data)
    assert feed.steps(None) == math.ceil(300 / 64) and math.ceil(50_000 / 64) == 782
    # --train_size: the weights' images only
    data = load_search_data(cfg(c100, "cifar100", train_size=100), CPU)
    assert len(data.weights) == 100 and len(data.arch) == 100


def test_cifar10_split_file_gives_autodls_halves_and_the_default_stays_seeded_halves(
        c10, tmp_path):
    splits = load_cifar(str(c10), "cifar10")
    n = len(splits.train_y)
    data = load_search_data(cfg(c10, "cifar10"), CPU)  # default: seeded class-balanced halves
    assert (len(data.weights), len(data.arch)) == (n // 2, n - n // 2)
    assert "arch_from" not in data.fingerprint and data.describe == ""
    order = np.random.default_rng(2).permutation(n)
    train, valid = np.sort(order[: n // 2]), np.sort(order[n // 2:])
    split = autodl_file(tmp_path / "cifar-split.txt", train=train, valid=valid)
    data = load_search_data(cfg(c10, "cifar10", split_file=str(split)), CPU)
    both = np.concatenate([train, valid])
    assert same_images(data.weights, splits.train_x[train], splits.train_y[train],
                       splits.train_x[both])
    assert same_images(data.arch, splits.train_x[valid], splits.train_y[valid],
                       splits.train_x[both])
    assert data.fingerprint["train_sha256"] == index_list_sha256(train)


def test_index_list_digest_is_sha256_of_the_sorted_list():
    assert index_list_sha256(np.array([10, 3, 1])) == hashlib.sha256(b"1,3,10").hexdigest()


class _Indexed(torch.utils.data.Dataset):
    """Item i is (i, label): what AutoDL's loaders draw, by index."""

    def __init__(self, labels):
        self.labels, self.transform = list(labels), None

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.tensor(i), self.labels[i]


def _one_epoch(loader):
    train, valid = [], []
    for xt, _, xv, _ in loader:
        train += xt.tolist()
        valid += xv.tolist()
    return train, valid


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:'pin_memory' argument")
def test_autodls_own_loaders_draw_the_same_images(c100, c10, tmp_path):
    """AutoDL's ``get_nas_search_loaders`` (xautodl) on the same split files: the images each
    side draws from, and the steps per epoch, are ours."""
    pytest.importorskip("xautodl", reason="xautodl (AutoDL's official code) is not installed")
    from xautodl.datasets.get_dataset_with_transform import get_nas_search_loaders

    s100 = load_cifar(str(c100), "cifar100")
    xvalid = np.sort(np.random.default_rng(3).choice(200, 100, replace=False))
    autodl_file(tmp_path / "cifar100-test-split.txt", xvalid=xvalid,
                xtest=np.setdiff1d(np.arange(200), xvalid))
    s10 = load_cifar(str(c10), "cifar10")
    n = len(s10.train_y)
    order = np.random.default_rng(4).permutation(n)
    train, valid = np.sort(order[: n // 2]), np.sort(order[n // 2:])
    autodl_file(tmp_path / "cifar-split.txt", train=train, valid=valid)

    loader, _, _ = get_nas_search_loaders(_Indexed(s100.train_y), _Indexed(s100.val_y),
                                          "cifar100", str(tmp_path), 64, 0)
    got_train, got_valid = _one_epoch(loader)
    ours = load_search_data(cfg(c100, "cifar100",
                                split_file=str(tmp_path / "cifar100-test-split.txt")), CPU)
    feed = ImageFeed(type("S", (), {"config": cfg(c100, "cifar100"), "device": CPU})(), ours)
    assert len(loader) == feed.steps(None)
    assert sorted(got_train) == list(range(len(s100.train_y))) == list(range(len(ours.weights)))
    assert set(got_valid) <= set(xvalid.tolist())
    assert same_images(ours.arch, s100.val_x[xvalid], s100.val_y[xvalid], s100.train_x)

    loader, _, _ = get_nas_search_loaders(_Indexed(s10.train_y), _Indexed(s10.val_y),
                                          "cifar10", str(tmp_path), 16, 0)
    got_train, got_valid = _one_epoch(loader)
    ours = load_search_data(cfg(c10, "cifar10", batch_size=16,
                                split_file=str(tmp_path / "cifar-split.txt")), CPU)
    assert sorted(got_train) == train.tolist() and set(got_valid) <= set(valid.tolist())
    both = np.concatenate([train, valid])
    assert same_images(ours.weights, s10.train_x[train], s10.train_y[train], s10.train_x[both])


@pytest.mark.parametrize("case", ["space", "range", "key", "json", "train_size", "overlap"])
def test_bad_split_files_are_one_clear_error(case, c10, c100, tmp_path):
    good = np.arange(0, 200, 2)
    path = tmp_path / "split.txt"
    kw = {}
    root, dataset = c100, "cifar100"
    if case == "space":
        autodl_file(path, xvalid=good)
        kw["space"] = "darts"
    elif case == "range":
        autodl_file(path, xvalid=[0, 5, 200])
    elif case == "key":
        autodl_file(path, valid=good)
    elif case == "json":
        path.write_text("{not json")
    elif case == "train_size":
        root, dataset, kw["train_size"] = c10, "cifar10", 20
        autodl_file(path, train=[0, 1], valid=[2, 3])
    else:
        root, dataset = c10, "cifar10"
        autodl_file(path, train=[0, 1, 2], valid=[2, 3])
    with pytest.raises(UserError) as err:
        load_search_data(cfg(root, dataset, split_file=str(path), **kw), CPU)
    want = {"space": "--space nas-bench-201", "range": "index 200", "key": "'xvalid'",
            "json": "JSON split format", "train_size": "drop one", "overlap": "share"}[case]
    assert want in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_darts_cli_on_cifar100_says_its_split_and_records_it(c100, tmp_path, capsys,
                                                             one_thread):
    save = tmp_path / "run"
    args = ["--space", "nas-bench-201", "--dataset", "cifar100", "--data", c100, "--save",
            save, "--epochs", 1, "--batch_size", 64, "--init_channels", 4, "--layers", 1,
            "--seed", 3, "--device", "cpu", "--quiet", "--no_plots"]
    code, out, err = run_cli_inprocess(darts_cli.main, args, capsys)
    assert code == 0, err
    assert "about 5 steps each (batch 64); weights on 300 training images, architecture on " \
           "100 test images (xvalid: a class-balanced half" in out
    ckpt = torch.load(save / "checkpoint.pt", weights_only=True)
    assert ckpt["settings"]["data"]["arch_from"] == "test"
    assert json.loads((save / "args.json").read_text())["split_file"] == ""
    # --resume with another xvalid list is refused
    split = autodl_file(tmp_path / "s.txt", xvalid=np.arange(100))
    code, out, err = run_cli_inprocess(
        darts_cli.main, [*args, "--resume", "--split_file", split], capsys)
    assert code == 2 and "--resume: data is" in err and len(err.strip().splitlines()) == 1, err
