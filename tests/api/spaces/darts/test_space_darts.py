"""The DARTS CNN space: genotype formats, DARTS's networks (exact parameter counts) and presets."""
from __future__ import annotations

import json
import pickle

import pytest
import torch
import torch.nn.functional as F

import api.spaces as spaces
from api.spaces import zoo
from api.errors import UserError
from api.spaces import get_space
from api.spaces.arch_io import Arch, load_arch, loads_arch, parse_arch, save_arch
from api.spaces.base import params_without_auxiliary
from api.spaces.darts import presets as P
from api.spaces.darts.network import NetworkCIFAR, NetworkImageNet

SPACE = get_space("darts")


PRESETS = list(P.PAPERS)

# what DARTS's genotypes.py prints for DARTS_V2 (repr of its namedtuple)
DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")

# (params, MACs) of DARTS's NetworkCIFAR (C=36, 20 cells) per preset: params in DARTS's
# count_parameters_in_MB convention (no auxiliary head), MACs of one 32x32 image
FULL_CIFAR10 = {"nasnet-a": (3830950, 603452448), "amoebanet-a": (3145078, 488931552),
                "pnasnet": (4481110, 706026528), "enas": (4394710, 693197856),
                "darts-v1": (3169414, 500987520), "darts-v2": (3349342, 528359040),
                "gdas-v1": (3368782, 519428736)}


# --------------------------------------------------------------------------- formats
def test_space_registered():
    assert "darts" in spaces.SPACE_CLASSES
    assert SPACE.name == "darts" and SPACE.kind == "cnn"
    assert SPACE.ops == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                         "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert SPACE.looks_like(DARTS_V2_TEXT) and not SPACE.looks_like("|none~0|+|")


def test_text_is_darts_repr():
    g = SPACE.parse(DARTS_V2_TEXT)
    assert g == P.DARTS_V2
    assert SPACE.format(g) == DARTS_V2_TEXT
    assert g.normal[0] == ("sep_conv_3x3", 0) and isinstance(g.normal, list)


@pytest.mark.parametrize("name", PRESETS)
def test_round_trips(name):
    g = P.PAPERS[name][0]
    assert SPACE.parse(SPACE.format(g)) == g
    data = SPACE.to_json(g)
    assert SPACE.from_json(json.loads(json.dumps(data))) == g
    assert data["normal"][0] == list(g.normal[0])
    assert set(data) == {"normal", "normal_concat", "reduce", "reduce_concat"}


def test_parse_other_printouts():
    # DARTS's search prints concat as range(2, 6) under Python 3
    text = DARTS_V2_TEXT.replace("[2, 3, 4, 5]", "range(2, 6)")
    assert SPACE.parse(text) == P.DARTS_V2
    assert SPACE.parse(DARTS_V2_TEXT.replace("[2, 3, 4, 5]", "list(range(2, 6))")) == P.DARTS_V2
    # AutoDL-Projects: pairs nested per node, extra fields
    g = P.GDAS_V1
    nested = lambda pairs: [tuple(pairs[i:i + 2]) for i in range(0, len(pairs), 2)]  # noqa: E731
    autodl = (f"Genotype(normal={nested(g.normal)!r}, normal_concat=[2, 3, 4, 5], "
              f"reduce={nested(g.reduce)!r}, reduce_concat=[2, 3, 4, 5], connectN=None, "
              "connects=None)")
    assert SPACE.parse(autodl) == g
    # GDAS's own code: (op, input, weight) triples
    weighted = [(op, i, 0.125) for op, i in g.normal]
    assert SPACE.parse(f"Genotype(normal={weighted!r}, normal_concat=range(2, 6), "
                       f"reduce={g.reduce!r}, reduce_concat=range(2, 6))") == g
    # positional fields, module-qualified name, surrounding blanks
    assert SPACE.parse(f"  genotypes.Genotype({g.normal!r}, [2, 3, 4, 5], {g.reduce!r}, "
                       "[2, 3, 4, 5])\n") == g


BAD = [
    ("", "empty"),
    ("Genotype(normal=[('sep_conv_3x3', 0)", "not a Genotype(...) expression"),
    ("hello", "expected Genotype("),
    ("Network(normal=[])", "expected Genotype("),
    ("Genotype(normal=[('conv_9x9', 0), ('sep_conv_3x3', 1)], normal_concat=[2], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])",
     "unknown op 'conv_9x9'"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 2)], normal_concat=[2], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])",
     "must be an integer in 0..1"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)], "
     "normal_concat=[2], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])",
     "has 3 (op, input) pairs"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2, 3], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])",
     "normal_concat index 3"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2, 2], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])", "twice"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2])",
     "missing field(s) reduce, reduce_concat"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2], extra=1)",
     "unknown field 'extra'"),
    ("Genotype(normal=__import__('os').system('echo hi'), normal_concat=[2], "
     "reduce=[], reduce_concat=[2])", "not a literal"),
    ("Genotype(normal=[('sep_conv_3x3', 'a'), ('sep_conv_3x3', 1)], normal_concat=[2], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])",
     "must be an integer"),
    ("Genotype(normal=[('sep_conv_3x3', True), ('sep_conv_3x3', 1)], normal_concat=[2], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])",
     "must be an integer"),
    ("Genotype(normal=[], normal_concat=[2], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], "
     "reduce_concat=[2])", "normal is empty"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=range(2, 3, 0), "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])", "not a literal"),
]


@pytest.mark.parametrize("text,expected", BAD)
def test_malformed_strings_one_line(text, expected):
    with pytest.raises(UserError) as info:
        SPACE.parse(text)
    msg = str(info.value)
    assert expected in msg and "\n" not in msg and msg.startswith("DARTS genotype:")


def test_unknown_op_names_the_space_ops():
    text = BAD[4][0]
    with pytest.raises(UserError, match="sep_conv_3x3, sep_conv_5x5, dil_conv_3x3"):
        SPACE.parse(text)


def test_from_json_errors():
    with pytest.raises(UserError, match="lacks reduce"):
        SPACE.from_json({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],
                         "normal_concat": [2]})
    with pytest.raises(UserError, match="expected a JSON object"):
        SPACE.from_json([1, 2])
    bad = SPACE.to_json(P.DARTS_V2)
    bad["reduce"][3] = ["max_pool_3x3", 7]
    with pytest.raises(UserError, match="reduce pair 3"):
        SPACE.from_json(bad)


def test_arch_files_round_trip(tmp_path, monkeypatch):
    arch = Arch("darts", P.DARTS_V2)
    path = str(tmp_path / "arch-best")
    save_arch(arch, path)
    for spec in (path, path + ".json"):
        loaded = load_arch(spec)
        assert loaded.space == "darts" and loaded.value == P.DARTS_V2
    assert (tmp_path / "arch-best.txt").read_text().strip() == DARTS_V2_TEXT
    assert pickle.loads(pickle.dumps(arch)) == arch
    # text auto-detection among spaces (only the stable ones: others may be mid-edit)
    monkeypatch.setattr(spaces, "SPACE_CLASSES",
                        {k: v for k, v in spaces.SPACE_CLASSES.items()
                         if k in ("autoshrink-cnn", "autoshrink-rnn", "darts")})
    assert loads_arch((tmp_path / "arch-best.txt").read_bytes()).value == P.DARTS_V2
    assert parse_arch(DARTS_V2_TEXT).space == "darts"


# --------------------------------------------------------------------------- networks
def test_darts_v2_exact_params_cifar10_and_imagenet():
    cifar = SPACE.build_network(P.DARTS_V2, "cifar10", auxiliary=True)
    assert isinstance(cifar, NetworkCIFAR)
    assert params_without_auxiliary(cifar) == 3349342  # DARTS: 3.349342 MB
    imagenet = SPACE.build_network(P.DARTS_V2, "imagenet", auxiliary=True)
    assert isinstance(imagenet, NetworkImageNet)
    assert params_without_auxiliary(imagenet) == 4718752  # DARTS: 4.718752 MB
    # DARTS's module names, so its released state dicts load by name
    keys = set(cifar.state_dict())
    assert {"stem.0.weight", "cells.0.preprocess0.op.1.weight", "cells.0._ops.0.op.1.weight",
            "cells.7.preprocess0.conv_1.weight", "auxiliary_head.features.2.weight",
            "classifier.weight"} <= keys
    assert {"stem0.0.weight", "stem1.1.weight"} <= set(imagenet.state_dict())


def test_darts_v2_exact_counts():
    # DARTS's own numbers: 3.349342 MB (CIFAR-10), 4.718752 MB (ImageNet, 224x224)
    assert SPACE.count(P.DARTS_V2, "cifar10") == (3349342, 528359040)
    assert SPACE.count(P.DARTS_V2, "imagenet") == (4718752, 529911552)


@pytest.mark.parametrize("name", PRESETS)
def test_full_size_counts(name):
    assert SPACE.count(P.PAPERS[name][0], "cifar10", auxiliary=True) == FULL_CIFAR10[name]


@pytest.mark.parametrize("name", PRESETS)
def test_preset_trains_forward_backward(name):
    assert zoo.PRESETS[name]().value == P.PAPERS[name][0]
    torch.manual_seed(0)
    model = SPACE.build_network(zoo.PRESETS[name](), "cifar10", C=4, layers=3,
                                auxiliary=True, drop_path_prob=0.2)
    model.train()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    logits, aux = model(x)
    assert logits.shape == aux.shape == (2, 10)
    loss = F.cross_entropy(logits, y) + model.auxiliary_weight * F.cross_entropy(aux, y)
    loss.backward()
    assert model.auxiliary_head.classifier.weight.grad is not None
    assert model.cells[0].preprocess1.op[1].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)


def test_count_excludes_auxiliary_and_runs_eval():
    plain = SPACE.count(P.DARTS_V2, "cifar10", C=4, layers=3)
    with_aux = SPACE.count(P.DARTS_V2, "cifar10", C=4, layers=3, auxiliary=True)
    assert plain == with_aux and plain[0] > 0 and plain[1] > 0


def test_drop_path_and_auxiliary_in_training():
    torch.manual_seed(0)
    model = SPACE.build_network(P.DARTS_V2, "cifar10", C=4, layers=3)
    x = torch.randn(4, 3, 32, 32)
    model.train()
    assert isinstance(model(x), torch.Tensor)  # no auxiliary head: plain logits
    a, b = model(x), model(x)
    assert torch.allclose(a, b)  # p = 0: deterministic
    model.drop_path_prob = 0.5
    torch.manual_seed(1)
    c = model(x)
    torch.manual_seed(2)
    d = model(x)
    assert not torch.allclose(c, d)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), model(x))  # drop-path is off in eval


@pytest.mark.parametrize("dataset,size,classes", [("imagenet", 224, 1000), ("imagenet16", 16, 120),
                                                  ("cifar100", 32, 100)])
def test_other_datasets_with_auxiliary(dataset, size, classes):
    model = SPACE.build_network(P.DARTS_V2, dataset, C=4, layers=3, auxiliary=True,
                                drop_path_prob=0.1)
    model.train()
    logits, aux = model(torch.randn(2, 3, size, size))
    assert logits.shape == aux.shape == (2, classes)


def test_build_network_errors():
    with pytest.raises(UserError, match="unknown dataset"):
        SPACE.build_network(P.DARTS_V2, "mnist")
    with pytest.raises(UserError, match="even C"):
        SPACE.build_network(P.DARTS_V2, "cifar10", C=7)
    with pytest.raises(UserError, match="not width"):
        SPACE.build_network(P.DARTS_V2, "cifar10", width=3)


# --------------------------------------------------------------------------- zoo
def test_zoo_entries():
    assert "api.spaces.darts.presets" in zoo.PRESET_MODULES
    for name in PRESETS:
        paper = zoo.PAPER[name]
        assert paper["dataset"] == "cifar10" and paper["params_M"] > 0
        assert 2 < paper["test_error"] < 4 and paper["source"]
    assert zoo.PAPER["darts-v2"]["test_error"] == 2.76
    table = P.zoo_table(C=4, layers=3)
    assert table.count("\n") == len(PRESETS) + 1 and "| darts-v2 |" in table


def test_enas_from_official_arc():
    g = P.ENAS
    assert g.normal[:2] == [("avg_pool_3x3", 0), ("sep_conv_3x3", 0)]
    assert g.normal_concat == [2, 3, 4, 5, 6]
    assert g.reduce[6:8] == [("sep_conv_3x3", 1), ("skip_connect", 0)]
    assert g.reduce_concat == [2, 4, 5, 6]  # node 3 is read by node 4
