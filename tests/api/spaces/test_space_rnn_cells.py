"""The DARTS RNN and ENAS RNN cell spaces: formats, conversion, the cell, the PTB networks."""
from __future__ import annotations

import json

import pytest
import torch

from api.spaces import zoo
from api.errors import UserError
from api.spaces import get_space, space_names
from api.spaces.arch_io import Arch, load_arch, parse_arch, save_arch
from api.spaces.darts_rnn.genotype import (DARTS_V1, DARTS_V2, ENAS, Genotype, cell_signature,
                                           parse_genotype)
from api.spaces.darts_rnn.model import CellLM, HighwayCell
from api.spaces.enas_rnn import ENAS_PTB, from_darts, parse_arc, to_darts

DARTS = get_space("darts-rnn")
ENAS_SPACE = get_space("enas-rnn")
# DARTS_V2 as quark0/darts rnn/genotypes.py prints it
V2_TEXT = ("Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), "
           "('tanh', 2), ('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")
ENAS_ARC_TEXT = "0 0 0 1 1 2 1 2 0 2 0 5 1 1 0 6 1 8 1 8 1 8 1"  # ENAS scripts/ptb_final.sh


def one_line_error(fn, *args, match=None):
    with pytest.raises(UserError, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


# ----------------------------------------------------------------------------- registry, zoo
def test_registered_spaces_and_presets():
    assert {"darts-rnn", "enas-rnn"} <= set(space_names())
    assert DARTS.kind == ENAS_SPACE.kind == "rnn"
    assert DARTS.ops == ("none", "tanh", "relu", "sigmoid", "identity")
    assert ENAS_SPACE.ops == ("tanh", "relu", "identity", "sigmoid")
    assert {"darts-ptb", "enas-ptb"} <= set(zoo.names())
    assert zoo.get("darts-ptb") == Arch("darts-rnn", DARTS_V2)
    assert zoo.get("enas-ptb") == Arch("enas-rnn", ENAS_PTB)
    assert zoo.PAPER["darts-ptb"]["params_M"] == 23 and zoo.PAPER["enas-ptb"]["params_M"] == 24


# ----------------------------------------------------------------------------- DARTS formats
def test_darts_text_is_dartss_repr_and_round_trips():
    assert DARTS.format(DARTS_V2) == V2_TEXT
    assert DARTS.parse(V2_TEXT) == DARTS_V2
    for g in (DARTS_V1, DARTS_V2, ENAS):
        assert DARTS.parse(DARTS.format(g)) == g
        assert DARTS.from_json(json.loads(json.dumps(DARTS.to_json(g)))) == g
    assert DARTS.format(ENAS).endswith("concat=[2, 5, 6, 9, 10, 11])")
    # other spellings read to the same canonical genotype
    flat = "Genotype([('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), " \
           "('sigmoid', 5), ('tanh', 3), ('relu', 5)], list(range(1, 9)))"
    assert parse_genotype(flat) == DARTS_V2
    assert parse_genotype("genotypes." + V2_TEXT.replace("range(1, 9)", str(list(range(1, 9))))) \
        == DARTS_V2
    assert DARTS.validate(Genotype(DARTS_V2.recurrent, list(range(1, 9)))) == DARTS_V2


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("Genotype(recurrent=[('relu', 0)], concat=[1]", "not a Genotype"),
    ("Foo(recurrent=[('relu', 0)], concat=[1])", "expected Genotype"),
    ("Genotype(recurrent=[('swish', 0)], concat=[1])", "unknown activation 'swish'"),
    ("Genotype(recurrent=[('none', 0)], concat=[1])", "only exists during the search"),
    ("Genotype(recurrent=[('relu', 0), ('tanh', 2)], concat=[1, 2])", "earlier state"),
    ("Genotype(recurrent=[('relu', -1)], concat=[1])", "earlier state"),
    ("Genotype(recurrent=[('relu', 0)], concat=[2])", "not a state"),
    ("Genotype(recurrent=[('relu', 0)], concat=[1, 1])", "twice"),
    ("Genotype(recurrent=[], concat=[0])", "empty"),
    ("Genotype(recurrent=[('relu', 0)])", "missing field"),
    ("Genotype(recurrent=[('relu', 0)], concat=[1], extra=1)", "unknown field"),
    ("Genotype(recurrent=__import__('os').system('true'), concat=[1])", "not a literal"),
    ("Genotype(recurrent=[('relu', 0, 1)], concat=[1])", "expected \\(activation"),
])
def test_darts_malformed_is_one_line(text, match):
    one_line_error(DARTS.parse, text, match=match)


def test_darts_bad_json_is_one_line():
    one_line_error(DARTS.from_json, {"recurrent": [["relu", 0]]}, match="lacks concat")
    one_line_error(DARTS.from_json, [1, 2], match="JSON object")
    one_line_error(DARTS.from_json, {"recurrent": [["relu", 3]], "concat": [1]},
                   match="earlier state")


# ----------------------------------------------------------------------------- ENAS formats
def test_enas_text_json_round_trip():
    arc = ENAS_SPACE.parse(ENAS_ARC_TEXT)
    assert arc == ENAS_PTB and ENAS_SPACE.format(arc) == ENAS_ARC_TEXT
    assert ENAS_SPACE.from_json(json.loads(json.dumps(ENAS_SPACE.to_json(arc)))) == arc
    assert parse_arc("[0, 0, 0, 1, 1]") == parse_arc("0,0,0,1,1") == (0, 0, 0, 1, 1)
    assert parse_arc("3") == (3,)  # a one-node cell


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("0 0 0 1", "odd count"),
    ("0 0 4", "activation 4"),
    ("0 1 0", "earlier node"),
    ("0 0 0 2 1", "earlier node"),
    ("0 0 x", "not an integer"),
    ("0 0 1.5", "not an integer"),
])
def test_enas_malformed_is_one_line(text, match):
    one_line_error(ENAS_SPACE.parse, text, match=match)


def test_autodetection_does_not_clash():
    assert DARTS.looks_like(V2_TEXT) and not ENAS_SPACE.looks_like(V2_TEXT)
    assert ENAS_SPACE.looks_like(ENAS_ARC_TEXT) and not DARTS.looks_like(ENAS_ARC_TEXT)
    micro = " ".join(["0", "0", "1", "1"] * 10)  # an ENAS micro CNN list: 40 integers
    assert not ENAS_SPACE.looks_like(micro)
    assert not ENAS_SPACE.looks_like("0 1 0")  # invalid predecessor: not this space's
    assert not ENAS_SPACE.looks_like("|nor_conv_3x3~0|+|none~0|")
    assert not DARTS.looks_like("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], "
                                "reduce=[('max_pool_3x3', 0)], reduce_concat=[2])")
    assert DARTS.looks_like("Genotype([('relu', 0)], [1])")
    assert parse_arch(V2_TEXT).space == "darts-rnn"
    assert parse_arch(ENAS_ARC_TEXT).space == "enas-rnn"


def test_arch_files_round_trip(tmp_path):
    for arch in (Arch("darts-rnn", DARTS_V2), Arch("darts-rnn", ENAS), Arch("enas-rnn", ENAS_PTB)):
        path = tmp_path / arch.space
        save_arch(arch, str(path))
        assert load_arch(str(path)) == arch                     # pickle (restricted)
        assert load_arch(f"{path}.json") == arch
        assert load_arch(f"{path}.txt") == arch
        assert load_arch(arch.text) == arch                     # the space string itself
    assert load_arch("darts-ptb").value == DARTS_V2 and load_arch("enas-ptb").value == ENAS_PTB


# ----------------------------------------------------------------------------- conversion
def test_enas_darts_conversion():
    g = to_darts(ENAS_PTB)
    assert list(g.concat) == [3, 4, 7, 9, 10, 11]  # the loose ends
    assert from_darts(g) == ENAS_PTB
    assert to_darts(from_darts(ENAS)) == ENAS
    # the official arc and DARTS's transcription are the same cell, numbered differently
    assert from_darts(ENAS) != ENAS_PTB
    assert cell_signature(g.recurrent, g.concat) == cell_signature(ENAS.recurrent, ENAS.concat)
    assert cell_signature(DARTS_V1.recurrent, DARTS_V1.concat) != \
        cell_signature(DARTS_V2.recurrent, DARTS_V2.concat)
    one_line_error(to_darts, (1, 0, 0), match="first state is always tanh")
    one_line_error(from_darts, DARTS_V2, match="no ENAS form")


# ----------------------------------------------------------------------------- the cell
_F = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda v: v}


def reference_cell(cell: HighwayCell, x, h, xm, hm):
    """The cell written out state by state, one matmul per node (DARTS's DARTSCell.cell)."""
    H, outs = cell.nhid, []
    for t in range(x.size(0)):
        c0, h0 = torch.cat([x[t] * xm, h * hm], -1).mm(cell.W0).split(H, -1)
        states = [h + torch.sigmoid(c0) * (_F[cell.first_act](h0) - h)]
        for k, (act, pred) in enumerate(cell.nodes):
            c, g = (states[pred] * hm).mm(cell.Ws[k]).split(H, -1)
            states.append(states[pred] + torch.sigmoid(c) * (_F[act](g) - states[pred]))
        h = torch.stack([states[i] for i in cell.concat], -1).mean(-1)
        outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("nodes, concat, first", [
    (DARTS_V2.recurrent, list(DARTS_V2.concat), "tanh"),
    (ENAS.recurrent, list(ENAS.concat), "tanh"),
    ([("identity", 0), ("sigmoid", 1)], [0, 2], "relu"),  # ENAS-only: act_0 relu, s0 output
])
def test_cell_matches_reference(nodes, concat, first):
    torch.manual_seed(0)
    T, B, D = 4, 3, 6
    cell = HighwayCell(D, D, nodes, concat, first).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.uniform_(-0.5, 0.5)
    x = torch.randn(T, B, D, dtype=torch.double, requires_grad=True)
    h = torch.randn(B, D, dtype=torch.double, requires_grad=True)
    xm = torch.bernoulli(torch.full((B, D), 0.7, dtype=torch.double)) / 0.7
    hm = torch.bernoulli(torch.full((B, D), 0.6, dtype=torch.double)) / 0.6
    out, last = cell(x, h, xm, hm)
    ref = reference_cell(cell, x, h, xm, hm)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(last, ref[-1])
    w = torch.randn_like(out)
    got = torch.autograd.grad((out * w).sum(), [x, h, *cell.parameters()])
    want = torch.autograd.grad((ref * w).sum(), [x, h, *cell.parameters()])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    # without masks the cell equals the reference with all-ones masks
    ones = torch.ones(B, D, dtype=torch.double)
    torch.testing.assert_close(cell(x, h)[0], reference_cell(cell, x, h, ones, ones))


# ----------------------------------------------------------------------------- the networks
@pytest.mark.parametrize("preset", ["darts-ptb", "enas-ptb"])
def test_tiny_lm_forward_backward(preset):
    arch = zoo.get(preset)
    space = get_space(arch.space)
    torch.manual_seed(0)
    model = space.build_network(arch.value, ntokens=50, emsize=16, nhid=16)
    assert isinstance(model, CellLM)
    T, B = 7, 5
    inputs, targets = torch.randint(0, 50, (T, B)), torch.randint(0, 50, (T, B))
    gen = torch.Generator().manual_seed(1)
    model.train()
    hidden = model.init_hidden(B)
    assert hidden.shape == (B, 16)
    out, raw, new_hidden = model.forward_raw(inputs, hidden, gen)
    assert out.shape == raw.shape == (T, B, 16) and new_hidden.shape == (B, 16)
    torch.testing.assert_close(new_hidden, raw[-1])
    loss, _ = model.loss(inputs, targets, hidden, gen)
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # eval: no dropout, deterministic; loss = NLL of log_prob
    model.eval()
    with torch.no_grad():
        out1, h1 = model(inputs, hidden)
        out2, _ = model(inputs, hidden)
        torch.testing.assert_close(out1, out2)
        logp = model.log_prob(out1)
        assert logp.shape == (T, B, 50)
        torch.testing.assert_close(logp.exp().sum(-1), torch.ones(T, B))
        nll = torch.nn.functional.nll_loss(logp.view(-1, 50), targets.view(-1))
        ce, _ = model.loss(inputs, targets, hidden)
        torch.testing.assert_close(ce, nll, rtol=1e-4, atol=1e-5)


def test_full_size_params_vs_papers():
    """DARTS-V2 at DARTS's 850 (paper 23M) and the ENAS cell at ENAS's 748 (paper 24M)."""
    cases = [("darts-ptb", {}, 22_960_000),                   # 8.5M emb + 2.89M W0 + 8 x 1.445M + 10k
             ("enas-ptb", {}, 22_027_104),                    # 7.48M emb + 2.238M W0 + 11 x 1.119M
             ("enas-ptb", {"emsize": 850, "decoder_bias": True}, 27_295_000)]  # DARTS's setup
    for preset, kwargs, expected in cases:
        arch = zoo.get(preset)
        space = get_space(arch.space)
        model = space.build_network(arch.value, **kwargs)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert params == expected == space.count(arch.value, **kwargs)[0], preset
    assert DARTS.count(DARTS_V2)[1] == 22_950_000  # MACs per word: cell 14.45M + decoder 8.5M


def test_network_bad_settings_are_one_line():
    one_line_error(DARTS.build_network, DARTS_V2, "ptb", 50, 16, 8, match="tied")
    one_line_error(DARTS.build_network, DARTS_V2, "imagenet", match="unknown text dataset")
    one_line_error(lambda: DARTS.build_network(DARTS_V2, ntokens=50, emsize=16, dropout=1.0),
                   match="dropout must be in")
    one_line_error(lambda: ENAS_SPACE.build_network(ENAS_PTB, C=16), match="takes no C")
