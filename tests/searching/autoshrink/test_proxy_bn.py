"""BatchNorm recalibration before each proxy validation: exact statistics, the training
trajectory untouched, and evaluation that measures the weights rather than stale averages."""
import numpy as np
import pytest
import torch

from api.datasets import DeviceBatches, ProxyData
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.network import NetworkSpec
from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig, recalibrate_bn, stop_reason

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_NET = NetworkSpec(scale=[0.5, 1], pool=[1, 2], replicate=[1, 1], num_classes=4)


def toy_proxy(n_train=96, n_val=48, seed=0) -> ProxyData:
    """Four classes told apart by which quadrant is bright."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 100, (n, 3, 32, 32)).astype(np.uint8)
        for i, c in enumerate(y):
            r, col = divmod(int(c), 2)
            x[i, :, r * 16:(r + 1) * 16, col * 16:(col + 1) * 16] += 120
        return x, y

    tx, ty = split(n_train)
    vx, vy = split(n_val)
    return ProxyData(tx, ty, vx, vy, 4, "toy")


def test_recalibrated_statistics_are_the_average_over_the_batches():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3, momentum=0.1)
    model = torch.nn.Sequential(bn)
    batches = [torch.randn(8, 3, 4, 4) * (i + 1) + i for i in range(3)]
    bn.running_mean.fill_(50.0)
    model.eval()
    used = recalibrate_bn(model, iter(batches), max_batches=2)
    assert used == 2
    means = torch.stack([b.mean((0, 2, 3)) for b in batches[:2]]).mean(0)
    variances = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches[:2]]).mean(0)
    torch.testing.assert_close(bn.running_mean, means)
    torch.testing.assert_close(bn.running_var, variances)
    assert bn.momentum == 0.1 and not model.training  # restored
    assert recalibrate_bn(model, iter(batches), max_batches=0) == 0
    torch.testing.assert_close(bn.running_mean, means)  # 0 batches: untouched


def test_stale_statistics_are_replaced_before_validation():
    """A net whose running averages are wrong (what a lagging momentum leaves) evaluates as
    with correct ones once recalibrated; without recalibration it reads near chance."""
    data = toy_proxy()
    graph = CellGraph.complete(3, ["input", "Conv1x1", "SepConv3x3"])
    cfg = CNNProxyTrainConfig(epochs=4, batch_size=32, val_batch_size=48, lr=1e-2, patience=9,
                           min_acc_epoch=0, overfit_ratio=float("inf"))
    ev = CNNProxyEvaluator(data, TINY_NET, cfg)
    torch.manual_seed(0)
    model = ev.build(graph)
    train, val = ev._device_data(torch.device("cpu"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        ev._train_epoch(model, opt, train, gen, False, torch.contiguous_format)
    ev._recalibrate(model, train, torch.Generator().manual_seed(1), False, torch.contiguous_format)
    _, good = ev._validate(model, val, False, torch.contiguous_format)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 5)
            m.running_var.uniform_(20, 50)
    _, stale = ev._validate(model, val, False, torch.contiguous_format)
    ev._recalibrate(model, train, torch.Generator().manual_seed(1), False, torch.contiguous_format)
    _, again = ev._validate(model, val, False, torch.contiguous_format)
    assert good > 0.6 and stale < good - 0.2
    assert again == good


def test_recalibration_leaves_the_training_trajectory_unchanged():
    data = toy_proxy()
    graph = CellGraph.complete(3, ["input", "Conv1x1", "SepConv3x3"])
    curves = {}
    for batches in (0, 2):
        cfg = CNNProxyTrainConfig(epochs=3, batch_size=32, patience=9, min_acc_epoch=0,
                               overfit_ratio=float("inf"), bn_recal_batches=batches)
        result = CNNProxyEvaluator(data, TINY_NET, cfg).evaluate(graph, seed=3)
        curves[batches] = result.curve
    assert [r["train_loss"] for r in curves[0]] == [r["train_loss"] for r in curves[2]]
    assert [r["val_loss"] for r in curves[0]] != [r["val_loss"] for r in curves[2]]


def test_device_batches_feed_recalibration_in_the_training_layout():
    data = toy_proxy(n_train=40)
    mean, std = data.stats()
    train = DeviceBatches(data.train_x, data.train_y, mean, std, torch.device("cpu"))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    xs = (x for x, _ in train.batches(16, torch.Generator().manual_seed(0)))
    assert recalibrate_bn(model, xs, max_batches=10) == 3  # 40 images: 16 + 16 + 8


@pytest.mark.parametrize("epoch,best_epoch,best_acc,train_loss,val_loss,reason", [
    (6, 1, 0.5, 1.0, 1.0, "patience"),
    (3, 3, 0.15, 1.0, 1.0, "min_acc"),
    (2, 2, 0.5, 0.3, 1.0, "overfit"),
    (2, 2, 0.5, 0.5, 1.0, None),
])
def test_stop_reasons_are_the_papers(epoch, best_epoch, best_acc, train_loss, val_loss, reason):
    assert stop_reason(CNNProxyTrainConfig(), epoch, best_epoch, best_acc, train_loss,
                       val_loss) == reason


def test_proxy_validation_images_can_come_from_the_train_split(cifar_root):
    from api.datasets import load_images, make_proxy

    splits = load_images("cifar10", str(cifar_root))
    default = make_proxy(splits, 60, 30, seed=0)
    test_rows = {x.tobytes() for x in splits.val_x}
    assert all(x.tobytes() in test_rows for x in default.val_x)  # the paper's: the test split
    held_out = make_proxy(splits, 60, 30, seed=0, val_source="train")
    train_rows = {x.tobytes() for x in splits.train_x}
    assert all(x.tobytes() in train_rows for x in held_out.val_x)
    assert not {x.tobytes() for x in held_out.val_x} & {x.tobytes() for x in held_out.train_x}
    assert np.bincount(held_out.val_y, minlength=10).max() <= 4  # class-balanced
    from api.errors import UserError

    with pytest.raises(UserError, match="lower them or draw"):
        make_proxy(splits, len(splits.train_y), 30, seed=0, val_source="train")


def test_search_cli_takes_the_validation_source(tmp_path, cifar_root):
    from searching.cnn.autoshrink_cnn import build_parser, load_proxy

    args = build_parser().parse_args(["--data", str(cifar_root), "--proxy_train", "60",
                                      "--proxy_val", "30", "--proxy_val_source", "train"])
    proxy = load_proxy(args)
    train_rows = {x.tobytes() for x in proxy.train_x}
    assert len(proxy.val_y) == 30 and not any(x.tobytes() in train_rows for x in proxy.val_x)
