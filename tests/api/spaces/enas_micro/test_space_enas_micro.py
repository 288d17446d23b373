"""The ENAS micro space (and NAO's 16-op numbering of it): formats, genotype conversion,
networks, and NAO's published cells."""
from __future__ import annotations

import json
import pickle
import random

import pytest
import torch

from api.spaces import zoo
from api.errors import UserError
from api.spaces import get_space
from api.spaces.arch_io import Arch, load_arch, loads_arch, parse_arch, save_arch
from api.spaces.base import params_without_auxiliary
from api.spaces.enas_micro import (MicroArch, from_genotype, loose_ends, loose_inputs,
                                   make_arch, to_genotype)
from api.spaces.nao.presets import NAONET_A, NAONET_B, NAONET_WS


@pytest.fixture(scope="module")
def space():
    return get_space("enas-micro")


@pytest.fixture(scope="module")
def nao():
    return get_space("nao")


def darts_or_skip():
    try:
        return get_space("darts")
    except UserError as exc:
        pytest.skip(f"the darts space is not available yet ({exc}); enas-micro networks are "
                    "DARTS networks")


def random_arch(rng, num_ops=5):
    values = []
    for _ in range(2):
        for n in range(5):
            values += [rng.randrange(n + 2), rng.randrange(num_ops),
                       rng.randrange(n + 2), rng.randrange(num_ops)]
    return make_arch(values, num_ops, "arch")


# ---------------------------------------------------------------------- formats
def test_text_json_round_trips(space):
    arch = space.parse(NAONET_B)
    assert isinstance(arch, MicroArch) and len(arch.normal) == len(arch.reduce) == 20
    assert space.format(arch) == NAONET_B  # NAO's arch_pool line, byte for byte
    assert space.parse("  " + NAONET_B.replace(" ", "\n", 3) + "\t") == arch
    data = space.to_json(arch)
    assert data["normal"][:4] == [0, 1, 0, 2]
    assert space.from_json(json.loads(json.dumps(data))) == arch
    assert space.from_json({"arc": NAONET_B}) == arch
    assert space.from_json(arch.to_list()) == arch
    rng = random.Random(0)
    for _ in range(100):
        a = random_arch(rng)
        assert space.parse(space.format(a)) == a
        assert space.from_json(space.to_json(a)) == a


def test_arch_files_round_trip(space, tmp_path):
    arch = Arch("enas-micro", space.parse(NAONET_WS))
    path = tmp_path / "arch-best"
    save_arch(arch, str(path))
    assert (tmp_path / "arch-best.txt").read_text().strip() == NAONET_WS
    for p in (path, tmp_path / "arch-best.json", tmp_path / "arch-best.txt"):
        assert load_arch(str(p)) == arch
    assert pickle.loads(pickle.dumps(arch)) == arch
    assert loads_arch(path.read_bytes()) == arch
    assert parse_arch(NAONET_WS) == arch  # auto-detected: 40 integers, ops 0..4
    nao_arch = parse_arch(NAONET_A)  # ops up to 15: NAO's numbering
    assert nao_arch.space == "nao"
    save_arch(nao_arch, str(tmp_path / "a"))
    assert load_arch(str(tmp_path / "a")) == nao_arch == load_arch(str(tmp_path / "a.json"))


@pytest.mark.parametrize("text, words", [
    ("", "40 integers"),
    ("0 1 0 2", "got 4"),
    (NAONET_B + " 0", "got 41"),
    (NAONET_B.replace("0 1 0 2", "0 1 0 x", 1), "item 3 is 'x'"),
    (NAONET_B.replace("0 1 0 2", "0 1 0 -2", 1), "op -2"),
    (NAONET_B.replace("0 1 0 2", "2 1 0 2", 1), "normal cell node 0 (item 0) reads input 2"),
    (NAONET_B.replace("0 1 0 2", "0 5 0 2", 1), "op 5"),
    ("0 1 0 2 " * 5 + "0 1 0 2 0 1 0 2 0 1 0 2 0 1 0 2 6 1 0 2", "reduction cell node 4"),
    ("0 1.5 " + " ".join(["0"] * 38), "'1.5'"),
])
def test_malformed_one_line(space, text, words):
    with pytest.raises(UserError) as exc:
        space.parse(text)
    message = str(exc.value)
    assert "\n" not in message and words in message


def test_malformed_json_and_objects(space):
    for bad in ({}, {"normal": [0] * 20}, {"normal": [0] * 20, "reduce": [0] * 19},
                {"normal": "x", "reduce": [0] * 20}, 7, [0] * 39, [True] + [0] * 39):
        with pytest.raises(UserError) as exc:
            space.from_json(bad)
        assert "\n" not in str(exc.value)
    with pytest.raises(UserError):
        space.format("0 1 0 2")  # a string is not an architecture object
    with pytest.raises(UserError):
        space.validate(MicroArch((0,) * 20, (9,) * 20))


def test_looks_like(space, nao):
    assert space.looks_like(NAONET_B) and not nao.looks_like(NAONET_B)
    assert nao.looks_like(NAONET_A) and not space.looks_like(NAONET_A)
    assert not space.looks_like("0 1 0 2") and not space.looks_like("|none~0|")
    assert not nao.looks_like(NAONET_A.replace("15", "16"))


# ---------------------------------------------------------------------- genotype
def test_genotype_conversion(space):
    arch = space.parse(NAONET_B)
    g = space.to_genotype(arch)
    assert g.normal[:4] == [("sep_conv_5x5", 0), ("avg_pool_3x3", 0),
                            ("sep_conv_5x5", 0), ("avg_pool_3x3", 2)]
    # NAO_pytorch's Cell concatenates the unused states: 3, 5, 6 (normal) and 4, 5, 6 (reduce)
    assert g.normal_concat == [3, 5, 6] and g.reduce_concat == [4, 5, 6]
    assert ("skip_connect", 2) in g.reduce  # identity (4) is DARTS's skip_connect
    assert space.from_genotype(g) == arch
    ws = space.to_genotype(space.parse(NAONET_WS))
    assert ws.normal_concat == [3, 4, 5, 6] == ws.reduce_concat
    rng = random.Random(1)
    for _ in range(200):
        a = random_arch(rng)
        g = to_genotype(a)
        assert from_genotype(g) == a
        assert list(g.normal_concat) == loose_ends(a.normal) and 6 in g.normal_concat
        from api.spaces.darts.genotype import Genotype  # the DARTS namedtuple itself
        assert isinstance(g, Genotype)


def test_genotype_back_refuses_non_enas(space):
    g = space.to_genotype(space.parse(NAONET_B))
    for bad, words in (
            (g._replace(normal_concat=[2, 3, 4, 5, 6]), "loose ends [3, 5, 6]"),
            (g._replace(normal=[("dil_conv_3x3", 0)] + g.normal[1:]), "dil_conv_3x3"),
            (g._replace(reduce=g.reduce[:8]), "4 nodes"),
            (g._replace(normal=[("sep_conv_3x3", 3)] + g.normal[1:]), "reads input 3"),
            ("Genotype", "not a DARTS genotype")):
        with pytest.raises(UserError) as exc:
            space.from_genotype(bad)
        assert words in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(UserError) as exc:
        to_genotype(get_space("nao").parse(NAONET_A))
    assert "no DARTS equivalent" in str(exc.value)


def test_agrees_with_the_darts_enas_preset(space):
    """The darts space's ``enas`` preset converts ENAS's official fixed arc on its own."""
    darts_or_skip()
    from api.spaces.darts import presets

    arch = make_arch(presets.ENAS_ARC)
    assert space.to_genotype(arch) == presets.ENAS == zoo.get("enas").value
    assert space.from_genotype(zoo.get("enas").value) == arch


def test_loose_inputs():
    cell = [1, 0, 1, 0] + [1, 0, 2, 0] * 4  # input 0 never read
    assert loose_inputs(cell) == [0] and loose_ends(cell) == [3, 4, 5, 6]


# ---------------------------------------------------------------------- networks
def test_darts_network_and_presets(space):
    darts_or_skip()
    for name, arc, layers, params in (("naonet-b", NAONET_B, 20, 2921302),
                                      ("naonet-ws", NAONET_WS, 17, 2301310),
                                      ("naonet-ws", NAONET_WS, 20, 2708038)):
        arch = zoo.get(name)
        assert arch == Arch("enas-micro", space.parse(arc))
        net = space.build_network(arch.value, "cifar10", layers=layers, auxiliary=True)
        # the same counts as NAO_pytorch's NASNetworkCIFAR for these cells (N=6 / N=5)
        assert params_without_auxiliary(net) == params
    assert "naonet-b" in zoo.names() and zoo.PAPER["naonet-ws"]["params_M"] == 2.5


@pytest.mark.parametrize("dataset", ["cifar10", "imagenet16"])
def test_darts_network_forward_backward(space, dataset, one_thread):
    darts_or_skip()
    torch.manual_seed(0)
    net = space.build_network(space.parse(NAONET_B), dataset, C=8, layers=5)
    size = 16 if dataset == "imagenet16" else 32
    out = net(torch.randn(2, 3, size, size))
    out.sum().backward()
    assert out.shape == (2, 10 if dataset == "cifar10" else 120)


def test_nao_network_params_and_forward(nao, one_thread):
    """Counts equal NAO_pytorch's NASNetworkCIFAR (checked against that code for these cells
    and random 16-op cells): NAONet-A 11,470,150 at C=36, N=6 (auxiliary head excluded)."""
    arch = zoo.get("naonet-a")
    assert arch.space == "nao" and arch.value == nao.parse(NAONET_A)
    assert zoo.PAPER["naonet-a"]["params_M"] == 128.0
    net = nao.build_network(arch.value, "cifar10", auxiliary=True)
    assert params_without_auxiliary(net) == 11470150
    assert sum(p.numel() for p in net.parameters()) == 11946576
    assert params_without_auxiliary(nao.build_network(nao.parse(NAONET_B), "cifar10")) == 2921302
    torch.manual_seed(0)
    small = nao.build_network(arch.value, "cifar10", C=8, N=1, auxiliary=True)
    small.train()
    logits, aux = small(torch.randn(2, 3, 32, 32))
    (logits.sum() + aux.sum()).backward()
    assert logits.shape == aux.shape == (2, 10)
    small.eval()
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # a reduction cell leaving an input unread concatenates it, factorized-reduced
    loose = make_arch([0, 7, 0, 15] + [2, 6, 2, 6] * 4 + [0, 13, 0, 10] + [2, 12, 2, 9] * 4,
                      16, "arch")
    net = nao.build_network(loose, "imagenet16", C=8, N=1, drop_path_prob=0.2)
    net.train()
    net(torch.randn(2, 3, 16, 16)).sum().backward()
    with pytest.raises(UserError):
        nao.build_network(arch.value, "cifar10", C=7)
    with pytest.raises(UserError):
        nao.build_network(arch.value, "cifar10", layers=20)
