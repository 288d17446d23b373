import numpy as np
import pytest
import torch

from api.datasets import (DeviceBatches, ProxyData, balanced_indices, load_cifar,
                          load_imagefolder, make_proxy)
from api.errors import UserError


def test_load_cifar_official_layout(cifar_root):
    splits = load_cifar(str(cifar_root))
    assert splits.train_x.shape == (300, 3, 32, 32) and splits.train_x.dtype == np.uint8
    assert splits.val_x.shape == (60, 3, 32, 32) and splits.num_classes == 10
    # --data may also point at the batches folder itself
    assert len(load_cifar(str(cifar_root / "cifar-10-batches-py")).train_y) == 300


def test_missing_and_damaged_cifar(tmp_path, cifar_root):
    with pytest.raises(UserError, match="no such folder"):
        load_cifar(str(tmp_path / "nothing"), download=False)
    with pytest.raises(UserError, match="not found under .*add --download"):
        load_cifar(str(tmp_path), download=False)
    damaged = tmp_path / "cifar-10-batches-py"
    damaged.mkdir()
    for f in (cifar_root / "cifar-10-batches-py").iterdir():
        (damaged / f.name).write_bytes(f.read_bytes())
    path = damaged / "data_batch_3"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match="data_batch_3"):
        load_cifar(str(tmp_path))


def test_balanced_sampling_without_replacement():
    labels = np.repeat(np.arange(4), [50, 50, 50, 10])  # class 3 is short
    idx = balanced_indices(labels, 100, np.random.default_rng(0))
    assert len(idx) == len(set(idx.tolist())) == 100
    counts = np.bincount(labels[idx])
    assert counts[3] == 10 and counts[:3].min() == 30
    again = balanced_indices(labels, 100, np.random.default_rng(0))
    assert np.array_equal(idx, again)
    with pytest.raises(UserError):
        balanced_indices(labels, 1000, np.random.default_rng(0))


def test_proxy_round_trip_and_seed(cifar_root, tmp_path):
    splits = load_cifar(str(cifar_root))
    a, b = make_proxy(splits, 100, 50, seed=3), make_proxy(splits, 100, 50, seed=3)
    assert np.array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.train_y, make_proxy(splits, 100, 50, seed=4).train_y)
    a.save(str(tmp_path / "p.npz"))
    c = ProxyData.load(str(tmp_path / "p.npz"))
    assert np.array_equal(c.val_x, a.val_x) and c.num_classes == 10
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(UserError, match="damaged"):
        ProxyData.load(str(tmp_path / "bad.npz"))


def test_real_subset_proxy(shared_cifar):
    proxy = make_proxy(load_cifar(str(shared_cifar)), 5000, 1000, seed=0)
    assert len(proxy.train_y) == 5000 and len(proxy.val_y) == 1000
    assert len(np.unique(proxy.train_x.reshape(5000, -1), axis=0)) == 5000


def test_imagefolder_any_size_grey_or_colour(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls, mode in (("cat", "RGB"), ("dog", "L")):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for k in range(3):
                shape = (20 + k, 30) if mode == "L" else (40, 25 + k, 3)
                Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(
                    d / f"{k}.jpg")
    splits = load_imagefolder(str(tmp_path), image_size=16)
    assert splits.train_x.shape == (6, 3, 16, 16) and splits.classes == ["cat", "dog"]
    (tmp_path / "train" / "cat" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match="broken.jpg"):
        load_imagefolder(str(tmp_path), image_size=16)


def test_device_batches_normalise_and_shuffle():
    x = np.full((10, 3, 4, 4), 255, dtype=np.uint8)
    data = DeviceBatches(x, np.arange(10), np.array([0.5] * 3), np.array([0.5] * 3),
                         torch.device("cpu"))
    assert torch.allclose(data.x, torch.ones_like(data.x))
    ys = torch.cat([y for _, y in data.batches(4, torch.Generator().manual_seed(0))])
    assert sorted(ys.tolist()) == list(range(10)) and ys.tolist() != list(range(10))
