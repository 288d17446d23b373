"""DARTS's recurrent ``Genotype(recurrent, concat)``: the architecture of the DARTS RNN space.

Numbering (DARTS ``rnn/model.py``): state 0 is the cell's first state ``s0``, made from the
input x_t and the previous hidden state; ``recurrent[i] = (activation, predecessor)`` makes
state ``i + 1`` from state ``predecessor``, so a predecessor must be at most ``i`` (an earlier
state). ``concat`` lists the states whose mean is the cell's output (and next hidden state).

Activations: DARTS's ``PRIMITIVES`` are ``none, tanh, relu, sigmoid, identity``; ``none`` only
exists for the search's mixed op (a derived genotype never holds it: DARTS's ``DARTSCell``
cannot build it), so a genotype here uses the four others.

Canonical form (what :func:`parse_genotype`, :func:`from_json` and :func:`validate` return):
``recurrent`` a list of ``(str, int)`` tuples and ``concat`` a ``range`` when it is a contiguous
ascending run (as DARTS writes ``concat=range(1, 9)``), else a list of ints (as DARTS's ``ENAS``
genotype's ``[2, 5, 6, 9, 10, 11]``). So ``repr`` of a canonical genotype is DARTS's own text
form and DARTS's genotypes compare equal to ours. :func:`parse_genotype` reads the text through
:func:`ast.parse` (never ``eval``): literals, ``range(...)`` and ``list(range(...))`` only.
"""
from __future__ import annotations

import ast
from collections import namedtuple
from typing import Any, Dict, List, Sequence, Tuple, Union

from api.errors import UserError

#: DARTS ``rnn/genotypes.py`` ``PRIMITIVES`` (the search's candidate ops, in order).
PRIMITIVES: Tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
#: The activations a derived (trainable) genotype may use.
ACTIVATIONS: Tuple[str, ...] = ("tanh", "relu", "sigmoid", "identity")
#: DARTS's search settings: 8 nodes, output = mean of all 8 (``STEPS``, ``CONCAT``).
STEPS = 8

_FIELDS = ("recurrent", "concat")
_WHAT = "DARTS RNN genotype"

Concat = Union[range, List[int]]


class Genotype(namedtuple("Genotype", "recurrent concat")):
    """DARTS's namedtuple (same fields, same repr)."""

    __slots__ = ()

    @property
    def steps(self) -> int:
        """Nodes after s0."""
        return len(self.recurrent)


# --------------------------------------------------------------------------- validation
def _fail(msg: str) -> None:
    raise UserError(f"{_WHAT}: {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


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
    if isinstance(concat, range):
        concat = list(concat)
    if not isinstance(concat, (list, tuple)) or not concat:
        _fail(f"concat must be a non-empty list of state indices, got {concat!r}")
    out: List[int] = []
    for c in concat:
        if not _is_int(c) or not 0 <= c <= steps:
            _fail(f"concat index {c!r} is not a state of this {steps}-node cell (0..{steps})")
        if c in out:
            _fail(f"concat lists state {c} twice")
        out.append(int(c))
    return canonical_concat(out)


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
    try:
        fields = [getattr(genotype, f) for f in _FIELDS]
    except AttributeError:
        _fail(f"expected a Genotype with fields recurrent, concat, got "
              f"{type(genotype).__name__}")
    return canonical(*fields)


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


def _literal(node: ast.AST, where: str) -> Any:
    """A literal's value: strings, ints, lists, tuples, ``range``/``list(range)`` calls."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
            and isinstance(node.operand, ast.Constant) and _is_int(node.operand.value):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e, where) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id == "range" and 1 <= len(node.args) <= 3:
            args = [_literal(a, where) for a in node.args]
            if all(_is_int(a) for a in args) and (len(args) < 3 or args[2] != 0):
                return range(*args)
        if node.func.id in ("list", "tuple") and len(node.args) == 1:
            inner = _literal(node.args[0], where)
            if isinstance(inner, (list, tuple, range)):
                return list(inner)
    shown = ast.unparse(node)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    _fail(f"{where} holds {shown!r}, which is not a literal (only lists, tuples, strings, "
          "integers and range(a, b) are read)")


def parse_genotype(text: str) -> Genotype:
    """``Genotype(recurrent=[...], concat=...)`` -> canonical :class:`Genotype`; anything
    malformed raises one :class:`UserError` line."""
    if not isinstance(text, str):
        _fail(f"expected a string, got {type(text).__name__}")
    src = text.strip()
    if not src:
        _fail("empty string")
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as exc:
        _fail(f"not a Genotype(...) expression ({exc.msg} at column {exc.offset}): "
              f"{src[:60]!r}")
    call = tree.body
    name = None
    if isinstance(call, ast.Call):
        if isinstance(call.func, ast.Name):
            name = call.func.id
        elif isinstance(call.func, ast.Attribute):  # genotypes.Genotype(...)
            name = call.func.attr
    if name != "Genotype":
        _fail(f"expected Genotype(recurrent=[...], concat=...), got {src[:60]!r}")
    if len(call.args) > len(_FIELDS):
        _fail(f"Genotype takes 2 fields (recurrent, concat), got {len(call.args)} values")
    values: Dict[str, Any] = {}
    for field, arg in zip(_FIELDS, call.args):
        if isinstance(arg, ast.Starred):
            _fail("starred arguments are not read")
        values[field] = _literal(arg, field)
    for kw in call.keywords:
        if kw.arg is None:
            _fail("**arguments are not read")
        if kw.arg not in _FIELDS:
            _fail(f"unknown field {kw.arg!r} (a recurrent genotype has recurrent, concat)")
        if kw.arg in values:
            _fail(f"field {kw.arg!r} given twice")
        values[kw.arg] = _literal(kw.value, kw.arg)
    missing = [f for f in _FIELDS if f not in values]
    if missing:
        _fail(f"missing field(s) {', '.join(missing)}")
    return canonical(values["recurrent"], values["concat"])


# --------------------------------------------------------------------------- JSON form
def to_json(genotype: Any) -> Dict[str, Any]:
    """``{"recurrent": [[act, pred], ...], "concat": [...]}``."""
    g = validate(genotype)
    return {"recurrent": [[act, pred] for act, pred in g.recurrent], "concat": list(g.concat)}


def from_json(data: Any) -> Genotype:
    if not isinstance(data, dict):
        _fail(f"expected a JSON object with recurrent, concat, got {type(data).__name__}")
    missing = [f for f in _FIELDS if f not in data]
    if missing:
        _fail(f"JSON object lacks {', '.join(missing)}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        _fail(f"JSON object has unknown key(s) {', '.join(unknown)}")
    return canonical(data["recurrent"], data["concat"])


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
