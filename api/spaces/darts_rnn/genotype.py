"""DARTS's recurrent ``Genotype(recurrent, concat)``: the architecture of the DARTS RNN space.

Numbering (DARTS ``rnn/model.py``): state 0 is made from x_t and the previous hidden state;
``recurrent[i] = (activation, predecessor)`` makes state ``i + 1`` from an earlier state
(``predecessor <= i``); the mean of the ``concat`` states is the cell's output. Activations are
``tanh``, ``relu``, ``sigmoid``, ``identity`` (``none`` exists only in the search's mixed op).
The canonical form (:func:`parse_genotype`, :func:`from_json`, :func:`validate`) has ``(str,
int)`` pairs and ``concat`` a ``range`` when contiguous, else a list, so its ``repr`` is DARTS's
own text; parsing never uses ``eval`` (:mod:`api.spaces.genotype_text`).

Fidelity notes: docs/fidelity/darts.md.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Dict, List, Sequence, Tuple, Union

from api.spaces.genotype_text import GenotypeText, is_int as _is_int

#: DARTS ``rnn/genotypes.py`` ``PRIMITIVES`` (the search's candidate ops, in order).
PRIMITIVES: Tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
#: The activations a derived (trainable) genotype may use.
ACTIVATIONS: Tuple[str, ...] = ("tanh", "relu", "sigmoid", "identity")
#: DARTS's search settings: 8 nodes, output = mean of all 8 (``STEPS``, ``CONCAT``).
STEPS = 8

_FIELDS = ("recurrent", "concat")
#: Text, JSON and object reading (shared with the CNN genotype's).
_TEXT = GenotypeText(
    "DARTS RNN genotype", _FIELDS, call_form="Genotype(recurrent=[...], concat=...)",
    too_many="Genotype takes 2 fields (recurrent, concat), got {n} values",
    fields_hint="a recurrent genotype has recurrent, concat")
_fail = _TEXT.fail

Concat = Union[range, List[int]]


class Genotype(namedtuple("Genotype", "recurrent concat")):
    """DARTS's namedtuple (same fields, same repr)."""

    __slots__ = ()

    @property
    def steps(self) -> int:
        """Nodes after s0."""
        return len(self.recurrent)


# --------------------------------------------------------------------------- validation
def _check_recurrent(recurrent: Any) -> List[Tuple[str, int]]:
    if not isinstance(recurrent, (list, tuple)):
        _fail(f"recurrent must be a list of (activation, predecessor) pairs, got "
              f"{type(recurrent).__name__}")
    if not recurrent:
        _fail("recurrent is empty; a cell needs at least one node")
    out: List[Tuple[str, int]] = []
    for i, pair in enumerate(recurrent):
        node = i + 1
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            _fail(f"recurrent entry {i} is {pair!r}; expected (activation, predecessor)")
        act, pred = pair
        if act == "none":
            _fail(f"node {node} has activation 'none', which only exists during the search; "
                  f"a derived cell uses {', '.join(ACTIVATIONS)}")
        if not isinstance(act, str) or act not in ACTIVATIONS:
            _fail(f"node {node} has unknown activation {act!r}; choose from "
                  f"{', '.join(ACTIVATIONS)}")
        if not _is_int(pred) or not 0 <= pred < node:
            _fail(f"node {node} ({act!r}, {pred!r}): the predecessor must be an earlier state, "
                  f"an integer in 0..{node - 1} (0 = s0, k = node k)")
        out.append((act, int(pred)))
    return out


def _check_concat(concat: Any, steps: int) -> Concat:
    return canonical_concat(_TEXT.check_indices("concat", concat, "state", 0, steps,
                                                f"a state of this {steps}-node cell"))


def canonical_concat(indices: Sequence[int]) -> Concat:
    """``range(a, b)`` for a contiguous ascending run (DARTS's spelling), else a list."""
    idx = [int(i) for i in indices]
    if len(idx) > 1 and idx == list(range(idx[0], idx[-1] + 1)):
        return range(idx[0], idx[-1] + 1)
    return idx


def canonical(recurrent: Any, concat: Any) -> Genotype:
    """Validate both fields and return the canonical :class:`Genotype`."""
    rec = _check_recurrent(recurrent)
    return Genotype(rec, _check_concat(concat, len(rec)))


def validate(genotype: Any) -> Genotype:
    """Any genotype-like object (DARTS's namedtuple, ours, a JSON dict) -> canonical form."""
    if isinstance(genotype, dict):
        return from_json(genotype)
    return canonical(*_TEXT.object_fields(genotype))


def loose_ends(genotype: Genotype) -> List[int]:
    """States no node reads (s0 included when nothing reads it), ascending."""
    used = {pred for _, pred in genotype.recurrent}
    return [s for s in range(genotype.steps + 1) if s not in used]


def cell_signature(nodes: Sequence[Tuple[str, int]], concat: Sequence[int],
                   first_act: str = "tanh") -> str:
    """A string equal for two cells iff they compute the same function up to how their nodes
    are numbered: each node reads one state, so a cell is a tree rooted at s0; the signature
    is that tree in canonical form, each state labelled by its activation and by whether it
    is an output state (``*``)."""
    children: Dict[int, List[int]] = {}
    for k, (_act, pred) in enumerate(nodes, start=1):
        children.setdefault(pred, []).append(k)
    acts = [first_act] + [act for act, _ in nodes]
    out = set(concat)

    def sig(s: int) -> str:
        kids = sorted(sig(k) for k in children.get(s, []))
        return f"{acts[s]}{'*' if s in out else ''}({','.join(kids)})"

    return sig(0)


# --------------------------------------------------------------------------- text form
def format_genotype(genotype: Any) -> str:
    """DARTS's one-line repr: ``Genotype(recurrent=[('sigmoid', 0), ...], concat=range(1, 9))``."""
    return repr(validate(genotype))


def parse_genotype(text: str) -> Genotype:
    """``Genotype(recurrent=[...], concat=...)`` -> canonical :class:`Genotype`; anything
    malformed raises one :class:`UserError` line."""
    values = _TEXT.parse_fields(text)
    return canonical(values["recurrent"], values["concat"])


# --------------------------------------------------------------------------- JSON form
def to_json(genotype: Any) -> Dict[str, Any]:
    """``{"recurrent": [[act, pred], ...], "concat": [...]}``."""
    g = validate(genotype)
    return {"recurrent": [[act, pred] for act, pred in g.recurrent], "concat": list(g.concat)}


def from_json(data: Any) -> Genotype:
    return canonical(*_TEXT.json_fields(data))


# --------------------------------------------------------------------------- published cells
# From quark0/darts rnn/genotypes.py (same values, our canonical form). DARTS_V2 is the
# second-order search's cell, the one DARTS reports on PTB (``DARTS = DARTS_V2`` there).
DARTS_V1 = Genotype([("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3), ("relu", 4),
                     ("identity", 1), ("relu", 5), ("relu", 1)], range(1, 9))
DARTS_V2 = Genotype([("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2),
                     ("sigmoid", 5), ("tanh", 3), ("relu", 5)], range(1, 9))
#: DARTS's transcription of ENAS's PTB cell (output = mean of its loose ends). The same cell,
#: numbered differently, as ENAS's own ``fixed_arc`` (see :mod:`api.spaces.enas_rnn`).
ENAS = Genotype([("tanh", 0), ("tanh", 1), ("relu", 1), ("tanh", 3), ("tanh", 3), ("relu", 3),
                 ("relu", 4), ("relu", 7), ("relu", 8), ("relu", 8), ("relu", 8)],
                [2, 5, 6, 9, 10, 11])
