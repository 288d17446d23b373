"""The ENAS RNN cell space (N nodes, each one predecessor and one of 4 activations).

Architecture: ENAS's integer list ``[act_0, prev_1, act_1, prev_2, act_2, ...]`` (length
2N - 1, as ENAS's ``--child_fixed_arc``); activations 0 tanh, 1 relu, 2 identity, 3 sigmoid.
Every node is a highway node, and the output (and next hidden state) is the mean of the loose
ends. The value is a tuple of ints; text form = the integers separated by spaces; JSON
``{"arc": [...]}``. :func:`to_darts` converts to a DARTS RNN genotype (lossless when ``act_0``
is tanh) and :func:`from_darts` back (when ``concat`` is the set of loose ends);
:class:`api.spaces.darts_rnn.model.HighwayCell` trains both. Network defaults: ENAS's final
PTB model (emsize = nhid = 748, tied decoder without a bias, its keep probabilities as dropouts).

Fidelity notes: docs/fidelity/enas.md.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from api.errors import UserError
from api.spaces.base import SearchSpace
from api.spaces.darts_rnn import DartsRNNSpace, build_cell_lm
from api.spaces.darts_rnn.genotype import Genotype, canonical_concat, loose_ends, validate

#: ENAS's activation indices (TF ``_rhn_fixed`` and carpedm20 ``shared_rnn_activations``).
ACTIVATIONS: Tuple[str, ...] = ("tanh", "relu", "identity", "sigmoid")
#: Nodes of ENAS's PTB search (``--child_rhn_depth=12``; carpedm20 ``--num_blocks 12``).
NUM_NODES = 12
#: ENAS's final PTB model (melodyguan/enas scripts/ptb_final.sh), as build_network defaults.
ENAS_FINAL = {"emsize": 748, "dropout": 0.76, "dropouth": 0.25, "dropoutx": 0.75,
              "dropouti": 0.0, "dropoute": 0.21, "decoder_bias": False}

Arc = Tuple[int, ...]
_WHAT = "ENAS RNN architecture"


def _fail(msg: str) -> None:
    raise UserError(f"{_WHAT}: {msg}")


def check_arc(values: Any) -> Arc:
    """Validate a sequence of ints as an ENAS RNN list; return it as a tuple."""
    if not isinstance(values, (list, tuple)):
        _fail(f"expected a list of integers, got {type(values).__name__}")
    if not values:
        _fail("empty list; a cell needs at least node 0's activation")
    if len(values) % 2 == 0:
        _fail(f"{len(values)} integers; the list [act_0, prev_1, act_1, ...] of an N-node "
              "cell has 2N - 1 (an odd count)")
    for pos, v in enumerate(values):
        if not isinstance(v, int) or isinstance(v, bool):
            _fail(f"entry {pos} is {v!r}, not an integer")
        if pos % 2 == 0:
            if not 0 <= v < len(ACTIVATIONS):
                node = pos // 2
                _fail(f"node {node} has activation {v}; choose 0..3 "
                      f"({', '.join(f'{i} {a}' for i, a in enumerate(ACTIVATIONS))})")
        else:
            node = (pos + 1) // 2
            if not 0 <= v < node:
                _fail(f"node {node} reads node {v}; its predecessor must be an earlier node "
                      f"(0..{node - 1})")
    return tuple(int(v) for v in values)


def parse_arc(text: str) -> Arc:
    """``"0 0 0 1 1 ..."`` (ENAS's ``--fixed_arc``), also with commas or in brackets."""
    if not isinstance(text, str):
        _fail(f"expected a string, got {type(text).__name__}")
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    tokens = [t for t in re.split(r"[\s,]+", body) if t]
    if not tokens:
        _fail("empty string")
    values = []
    for t in tokens:
        if not re.fullmatch(r"[+-]?\d+", t):
            _fail(f"{t!r} is not an integer (expected integers like '0 0 0 1 1 2 1')")
        values.append(int(t))
    return check_arc(values)


def format_arc(arc: Sequence[int]) -> str:
    return " ".join(str(v) for v in check_arc(tuple(arc)))


def num_nodes(arc: Arc) -> int:
    return (len(arc) + 1) // 2


def nodes_of(arc: Arc) -> List[Tuple[str, int]]:
    """[(activation, predecessor)] of nodes 1..N-1 (DARTS's ``recurrent`` layout)."""
    return [(ACTIVATIONS[arc[2 * k]], arc[2 * k - 1]) for k in range(1, num_nodes(arc))]


def arc_loose_ends(arc: Arc) -> List[int]:
    """Nodes no node reads (node 0 included when nothing reads it), ascending."""
    used = {arc[2 * k - 1] for k in range(1, num_nodes(arc))}
    return [n for n in range(num_nodes(arc)) if n not in used]


def to_darts(arc: Sequence[int]) -> Genotype:
    """The DARTS RNN genotype computing the same cell: ``recurrent`` = nodes 1..N-1,
    ``concat`` = the loose ends. Needs ``act_0`` = tanh (DARTS's s0 has no other)."""
    a = check_arc(tuple(arc))
    if a[0] != 0:
        raise UserError(f"{_WHAT} {format_arc(a)!r} has node 0 activation "
                        f"{ACTIVATIONS[a[0]]}; a DARTS genotype's first state is always tanh, "
                        "so it has no DARTS form (the enas-rnn space trains it as it is)")
    return Genotype(nodes_of(a), canonical_concat(arc_loose_ends(a)))


def from_darts(genotype: Any) -> Arc:
    """The ENAS list of a DARTS RNN genotype whose ``concat`` is its set of loose ends."""
    g = validate(genotype)
    ends = loose_ends(g)
    if sorted(g.concat) != ends:
        raise UserError(f"the DARTS RNN genotype averages states {list(g.concat)}, but an ENAS "
                        f"cell averages its loose ends {ends}: it has no ENAS form")
    arc = [0]
    for act, pred in g.recurrent:
        arc += [pred, ACTIVATIONS.index(act)]
    return tuple(arc)


class EnasRNNSpace(SearchSpace):
    name = "enas-rnn"
    kind = "rnn"
    ops = ACTIVATIONS

    def parse(self, text: str) -> Arc:
        return parse_arc(text)

    def format(self, arch: Arc) -> str:
        return format_arc(arch)

    def to_json(self, arch: Arc) -> Dict[str, Any]:
        return {"arc": list(check_arc(tuple(arch)))}

    def from_json(self, data: Dict[str, Any]) -> Arc:
        if not isinstance(data, dict) or set(data) != {"arc"}:
            _fail(f"expected a JSON object {{\"arc\": [...]}}, got {str(data)[:60]}")
        return check_arc(data["arc"])

    def validate(self, arch: Any) -> Arc:
        return check_arc(tuple(arch) if isinstance(arch, list) else arch)

    def looks_like(self, text: str) -> bool:
        """Space/comma-separated integers, an odd count of at least 3 that is a valid ENAS
        RNN list (ENAS's 40-integer micro CNN lists have an even count)."""
        if not re.fullmatch(r"\s*\[?[\s\d,+-]+\]?\s*", text):
            return False
        try:
            return len(parse_arc(text)) >= 3
        except UserError:
            return False

    # ------------------------------------------------------------------ network and cost
    def cell_args(self, arch: Any) -> Tuple[list, list, str]:
        a = check_arc(tuple(arch))
        return nodes_of(a), arc_loose_ends(a), ACTIVATIONS[a[0]]

    def build_network(self, arch: Any, dataset: str = "ptb", ntokens: Optional[int] = None,
                      emsize: int = ENAS_FINAL["emsize"], nhid: Optional[int] = None,
                      dropout: float = ENAS_FINAL["dropout"],
                      dropouth: float = ENAS_FINAL["dropouth"],
                      dropoutx: float = ENAS_FINAL["dropoutx"],
                      dropouti: float = ENAS_FINAL["dropouti"],
                      dropoute: float = ENAS_FINAL["dropoute"],
                      decoder_bias: bool = ENAS_FINAL["decoder_bias"], embedding=None,
                      **unused: Any):
        """ENAS's PTB language model of ``arch`` (a :class:`CellLM`)."""
        return build_cell_lm(self, arch, dataset, ntokens, emsize, nhid, unused,
                             dropout=dropout, dropouth=dropouth, dropoutx=dropoutx,
                             dropouti=dropouti, dropoute=dropoute, decoder_bias=decoder_bias,
                             embedding=embedding)

    def supernet(self, ntokens: int, **kwargs: Any):
        """ENAS's shared-weight LM (:class:`api.spaces.enas_rnn.supernet.EnasRNNSupernet`),
        by default at carpedm20/ENAS-pytorch's search sizes and dropouts."""
        from api.spaces.enas_rnn.supernet import EnasRNNSupernet

        return EnasRNNSupernet(ntokens, **kwargs)

    def count(self, arch: Any, dataset: str = "ptb", ntokens: Optional[int] = None,
              emsize: int = ENAS_FINAL["emsize"], nhid: Optional[int] = None,
              decoder_bias: bool = ENAS_FINAL["decoder_bias"], **unused: Any) -> Tuple[int, int]:
        """(params, MACs of one word), as :meth:`DartsRNNSpace.count`."""
        nodes, concat, _first = self.cell_args(arch)
        return DartsRNNSpace().count(Genotype(nodes, concat), dataset, ntokens, emsize, nhid,
                                     decoder_bias)


# The ENAS paper's PTB cell, as the authors' code trains it (melodyguan/enas
# scripts/ptb_final.sh ``fixed_arc``). DARTS's rnn/genotypes.py ``ENAS`` is the same cell with
# its nodes numbered differently (tests/test_space_rnn_cells.py checks that).
ENAS_PTB: Arc = (0, 0, 0, 1, 1, 2, 1, 2, 0, 2, 0, 5, 1, 1, 0, 6, 1, 8, 1, 8, 1, 8, 1)
