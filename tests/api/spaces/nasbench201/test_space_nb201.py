"""The NAS-Bench-201 space: formats, API index, TinyNetwork, and exact benchmark costs."""
from __future__ import annotations

import csv
import gzip
import json
import pickle
import random
from pathlib import Path

import pytest
import torch

from api.errors import UserError
from api.spaces import get_space
from api.spaces.arch_io import Arch, load_arch, loads_arch, parse_arch, save_arch
from api.spaces.nasbench201 import NUM_ARCHS, OPS, Cell, arch_at, index_of

from tests.conftest import SHARED_DATA  # noqa: E402

TABLE = SHARED_DATA / "nasbench201" / "nb201.csv.gz"
#: The table's best cell on CIFAR-100 (index 9930, 73.51% test).
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def space():
    return get_space("nas-bench-201")


@pytest.fixture(scope="module")
def rows():
    if not TABLE.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {TABLE} (see shared/data/README.md)")
    with gzip.open(TABLE, "rt", newline="") as f:
        return list(csv.DictReader(f))


def uniform(op):
    return Cell((op,) * 6)


# ---------------------------------------------------------------------- formats
def test_text_round_trip_and_views(space):
    cell = space.parse(BEST)
    assert space.format(cell) == BEST
    assert cell.ops == ("nor_conv_3x3",) * 3 + ("skip_connect", "nor_conv_3x3", "nor_conv_3x3")
    assert cell.nodes()[2] == [("skip_connect", 0), ("nor_conv_3x3", 1), ("nor_conv_3x3", 2)]
    assert (0, 3, "skip_connect") in cell.edges()
    assert space.parse("  " + BEST + "\n") == cell
    for op in OPS:
        assert space.parse(space.format(uniform(op))) == uniform(op)
    rng = random.Random(0)
    for _ in range(50):
        c = Cell.from_op_indices([rng.randrange(5) for _ in range(6)])
        assert space.parse(space.format(c)) == c
        assert space.from_json(json.loads(json.dumps(space.to_json(c)))) == c


def test_json_form(space):
    cell = space.parse(BEST)
    data = space.to_json(cell)
    assert data["nodes"][0] == [["nor_conv_3x3", 0]]
    assert space.from_json({"arch": BEST}) == cell  # the string form is accepted too
    for bad in ({}, {"nodes": []}, {"nodes": [[["none", 0]], [["none", 0]], []]},
                {"nodes": [[["none", 1]], [["none", 0], ["none", 1]],
                           [["none", 0], ["none", 1], ["none", 2]]]},
                {"nodes": [[["conv", 0]], [["none", 0], ["none", 1]],
                           [["none", 0], ["none", 1], ["none", 2]]]}, [1, 2]):
        with pytest.raises(UserError) as exc:
            space.from_json(bad)
        assert "\n" not in str(exc.value)


def test_arch_files_round_trip(space, tmp_path):
    arch = Arch("nas-bench-201", space.parse(BEST))
    path = tmp_path / "arch-best"
    save_arch(arch, str(path))
    assert (tmp_path / "arch-best.txt").read_text().strip() == BEST
    for p in (path, Path(f"{path}.json"), Path(f"{path}.txt")):
        assert load_arch(str(p)) == arch
    assert pickle.loads(pickle.dumps(arch)) == arch
    assert loads_arch(path.read_bytes()) == arch
    assert parse_arch(BEST) == arch  # auto-detected among the spaces
    assert load_arch(BEST) == arch


@pytest.mark.parametrize("text, words", [
    ("", "3 nodes"),
    ("|none~0|+|none~0|none~1|", "3 nodes"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "3 nodes"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|", "3 input"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1"),
    ("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NAS-Bench-201 op 'conv_3x3'"),
    ("|max_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "input ~1"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "input ~1"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", "input ~3"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "op~input"),
    ("|none~0|+|none~0||+|none~0|none~1|none~2|", "op~input"),
])
def test_malformed_strings_one_line(space, text, words):
    with pytest.raises(UserError) as exc:
        space.parse(text)
    message = str(exc.value)
    assert "\n" not in message and words in message


def test_looks_like(space):
    assert space.looks_like(BEST)
    assert not space.looks_like("0 1 0 2")
    assert not space.looks_like("ops=a edges=b")


def test_cell_validation():
    with pytest.raises(UserError):
        Cell(("none",) * 5)
    with pytest.raises(UserError):
        Cell(("none",) * 5 + ("sep_conv_3x3",))
    with pytest.raises(UserError):
        Cell.from_op_indices([0, 1, 2, 3, 4, 5])
    with pytest.raises(UserError):
        arch_at(NUM_ARCHS)


# ---------------------------------------------------------------------- API index
def test_index_order_matches_table(space, rows):
    assert len(rows) == NUM_ARCHS
    for i, row in enumerate(rows):  # every row: the CSV's row i is API index i
        assert int(row["index"]) == i
        assert space.format(arch_at(i)) == row["arch"]
    for i in (0, 9, 123, 15624):
        assert index_of(space.parse(rows[i]["arch"])) == i == space.index(arch_at(i))


# ---------------------------------------------------------------------- cost
def _sample(rows, n=300, seed=0):
    """The all-none, all-skip, all-conv3x3, all-conv1x1, all-pool cells and the table's best
    cell of each dataset (test accuracy), one row per distinct (#conv1x1, #conv3x3) pair,
    then random rows."""
    by_arch = {r["arch"]: r for r in rows}
    picked = {uniform(op).to_string() for op in OPS}
    for dataset in ("cifar10", "cifar100", "imagenet16"):
        picked.add(max(rows, key=lambda r: float(r[f"nats_{dataset}_test_200ep"]))["arch"])
    assert BEST in picked  # CIFAR-100's best (73.51%)
    seen = set()
    for r in rows:
        key = (r["arch"].count("nor_conv_1x1"), r["arch"].count("nor_conv_3x3"))
        if key not in seen:
            seen.add(key)
            picked.add(r["arch"])
    assert len(seen) == 28
    rng = random.Random(seed)
    order = list(by_arch)
    rng.shuffle(order)
    for arch in order:
        if len(picked) >= n:
            break
        picked.add(arch)
    return [by_arch[a] for a in sorted(picked)]


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "imagenet16"])
def test_cost_equals_benchmark_columns(space, rows, dataset):
    sample = _sample(rows)
    assert len(sample) == 300
    for row in sample:
        params, flops = space.count(space.parse(row["arch"]), dataset)
        assert f"{params / 1e6:.6f}" == f"{float(row[f'params_M_{dataset}']):.6f}", row["arch"]
        assert f"{flops / 1e6:.5f}" == f"{float(row[f'flops_M_{dataset}']):.5f}", row["arch"]


def test_cost_without_cache_and_against_macs(space, rows):
    from api.spaces.complexity import count_macs

    by_arch = {r["arch"]: r for r in rows}
    for text in (BEST, uniform("none").to_string(), rows[0]["arch"]):
        cell = space.parse(text)
        cached = space.count(cell, "imagenet16")
        assert space.count(cell, "imagenet16", cache=False) == cached
        assert space.benchmark_cost(cell, "imagenet16") == (
            float(by_arch[text]["params_M_imagenet16"]), float(by_arch[text]["flops_M_imagenet16"]))
        model = space.build_network(cell, "imagenet16")
        # the benchmark's FLOPs = conv/linear MACs + the classifier's 120 bias adds
        assert cached[1] == count_macs(model, (3, 16, 16)) + 120
        assert cached[0] == sum(p.numel() for p in model.parameters())


def test_all_none_and_all_skip_costs_by_hand(space):
    """All-none: stem + two basic blocks + BN + classifier = 73,306 params, 7.78305M FLOPs on
    CIFAR-10; a 1x1 conv edge adds 5 cells x (C^2 + 2C) per stage, 262,144 FLOPs per cell."""
    assert space.count(uniform("none"), "cifar10") == (73306, 7783050)
    assert space.count(uniform("skip_connect"), "cifar10") == (73306, 7783050)
    assert space.count(uniform("avg_pool_3x3"), "cifar10") == (73306, 7783050)
    one = Cell(("nor_conv_1x1",) + ("none",) * 5)
    assert space.count(one, "cifar10") == (73306 + 5 * (288 + 1088 + 4224),
                                           7783050 + 15 * 262144)


# ---------------------------------------------------------------------- network
def test_network_structure(space):
    net = space.build_network(space.parse(BEST), "cifar100")
    assert len(net.cells) == 17  # 3 x 5 cells + 2 basic blocks
    assert net.classifier.out_features == 100 and net.classifier.in_features == 64
    small = space.build_network(space.parse(BEST), "imagenet16", C=8, N=1)
    assert small.classifier.in_features == 32 and len(small.cells) == 5
    with pytest.raises(UserError):
        space.build_network(space.parse(BEST), "cifar10", layers=3)
    with pytest.raises(UserError):
        space.build_network(space.parse(BEST), "mnist")


@pytest.mark.parametrize("text, dataset", [
    (BEST, "cifar10"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "imagenet16"),
    ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
     "cifar100"),
])
def test_forward_backward(space, text, dataset, one_thread):
    torch.manual_seed(0)
    net = space.build_network(space.parse(text), dataset, C=8, N=2)
    size = 16 if dataset == "imagenet16" else 32
    x = torch.randn(2, 3, size, size)
    logits = net(x)
    assert logits.shape == (2, {"cifar10": 10, "cifar100": 100, "imagenet16": 120}[dataset])
    logits.logsumexp(1).sum().backward()
    assert net.classifier.weight.grad is not None
    assert torch.isfinite(net.classifier.weight.grad).all()
