"""DARTS's ``Genotype``: the architecture type of the DARTS CNN space (and, through
conversion, of the ENAS/NAO micro space).

``normal``/``reduce`` list ``(op, input)`` pairs, two consecutive pairs per intermediate node;
input 0 and 1 are the cell inputs c_{k-2} and c_{k-1}, input i >= 2 is intermediate node i-2.
``normal_concat``/``reduce_concat`` are the node indices (in the same numbering) whose outputs
are concatenated as the cell's output. Same field names and order as DARTS's namedtuple, so a
genotype copied from any DARTS-family codebase reads as is.

Canonical form (what :func:`parse`, :func:`from_json` and :func:`canonical` return): pair lists
of ``(str, int)`` tuples and concat lists of ints, i.e. exactly what DARTS's ``genotypes.py``
holds, so ``repr`` of a canonical genotype is DARTS's own text form and a DARTS genotype
compares equal to ours.

:func:`parse` reads that text without ``eval``: the string goes through :func:`ast.parse` and
only literals are accepted, plus ``range(a, b)`` / ``list(range(a, b))`` for a concat (what
DARTS's search prints under Python 3). It also reads what AutoDL-Projects / GDAS print: pairs
nested per node (``[(('sep_conv_3x3', 0), ('sep_conv_3x3', 1)), ...]``), GDAS's weighted
triples ``('skip_connect', 0, 0.13)`` (the weight is dropped), and AutoDL's extra fields
``connectN=None, connects=None``. Anything else raises one :class:`UserError` line.
"""
from __future__ import annotations

import ast
from collections import namedtuple
from typing import Any, Dict, List, Tuple

from api.errors import UserError

#: The searchable ops of the DARTS CNN space, in DARTS's ``PRIMITIVES`` order.
PRIMITIVES: Tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                               "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
#: Ops outside the search space that DARTS's ``operations.py`` still builds, needed by the
#: published NASNet-A, AmoebaNet-A and PNASNet cells.
EXTRA_OPS: Tuple[str, ...] = ("sep_conv_7x7", "conv_7x1_1x7")
KNOWN_OPS: Tuple[str, ...] = PRIMITIVES + EXTRA_OPS

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_WHAT = "DARTS genotype"


class Genotype(namedtuple("Genotype", "normal normal_concat reduce reduce_concat")):
    """DARTS's namedtuple (same fields, same repr), with a few helpers."""

    __slots__ = ()

    @property
    def steps(self) -> Tuple[int, int]:
        """Intermediate nodes of the (normal, reduction) cell."""
        return len(self.normal) // 2, len(self.reduce) // 2

    def to_text(self) -> str:
        return format_genotype(self)

    def to_json(self) -> Dict[str, Any]:
        return to_json(self)


# --------------------------------------------------------------------------- validation
def _fail(msg: str) -> None:
    raise UserError(f"{_WHAT}: {msg}")


def _ops_hint() -> str:
    return (f"the DARTS space's ops are {', '.join(PRIMITIVES)} "
            f"(fixed networks also build {', '.join(EXTRA_OPS)})")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _flatten_nodes(field: str, pairs: Any) -> List[Any]:
    """AutoDL prints one tuple of two pairs per node; DARTS prints the pairs flat."""
    if not isinstance(pairs, (list, tuple)):
        _fail(f"{field} must be a list of (op, input) pairs, got {type(pairs).__name__}")
    if pairs and all(isinstance(node, (list, tuple)) and node
                     and all(isinstance(p, (list, tuple)) for p in node) for node in pairs):
        flat: List[Any] = []
        for k, node in enumerate(pairs):
            if len(node) != 2:
                _fail(f"{field} node {k} has {len(node)} (op, input) pairs; each node takes 2")
            flat.extend(node)
        return flat
    return list(pairs)


def _check_pairs(field: str, pairs: Any) -> List[Tuple[str, int]]:
    flat = _flatten_nodes(field, pairs)
    if not flat:
        _fail(f"{field} is empty; a cell needs at least one node (2 pairs)")
    if len(flat) % 2:
        _fail(f"{field} has {len(flat)} (op, input) pairs; each node takes 2, "
              "so the count must be even")
    out: List[Tuple[str, int]] = []
    for k, pair in enumerate(flat):
        if not isinstance(pair, (list, tuple)) or len(pair) not in (2, 3):
            _fail(f"{field} pair {k} is {pair!r}; expected (op, input)")
        if len(pair) == 3 and not isinstance(pair[2], float):  # GDAS's (op, input, weight)
            _fail(f"{field} pair {k} is {tuple(pair)!r}; expected (op, input) or GDAS's "
                  "(op, input, weight)")
        op, idx = pair[0], pair[1]
        if not isinstance(op, str):
            _fail(f"{field} pair {k}: op {op!r} is not a name")
        if op not in KNOWN_OPS:
            _fail(f"unknown op {op!r} in {field} pair {k}; {_ops_hint()}")
        node = k // 2
        if not _is_int(idx) or not 0 <= idx < node + 2:
            _fail(f"{field} pair {k} ({op!r}, {idx!r}) feeds node {node + 2}, whose input "
                  f"must be an integer in 0..{node + 1} (0, 1 = cell inputs, i >= 2 = node i)")
        out.append((op, int(idx)))
    return out


def _check_concat(field: str, concat: Any, steps: int) -> List[int]:
    if isinstance(concat, range):
        concat = list(concat)
    if not isinstance(concat, (list, tuple)) or not concat:
        _fail(f"{field} must be a non-empty list of node indices, got {concat!r}")
    out: List[int] = []
    for c in concat:
        if not _is_int(c) or not 2 <= c < steps + 2:
            _fail(f"{field} index {c!r} is not an intermediate node (2..{steps + 1})")
        if c in out:
            _fail(f"{field} lists node {c} twice")
        out.append(int(c))
    return out


def canonical(normal: Any, normal_concat: Any, reduce: Any, reduce_concat: Any) -> Genotype:
    """Validate the four fields and return the canonical :class:`Genotype`."""
    n = _check_pairs("normal", normal)
    r = _check_pairs("reduce", reduce)
    return Genotype(n, _check_concat("normal_concat", normal_concat, len(n) // 2),
                    r, _check_concat("reduce_concat", reduce_concat, len(r) // 2))


def validate(genotype: Any) -> Genotype:
    """Any genotype-like object (DARTS's or AutoDL's namedtuple, ours) -> canonical form."""
    if isinstance(genotype, dict):
        return from_json(genotype)
    try:
        fields = [getattr(genotype, f) for f in _FIELDS]
    except AttributeError:
        _fail(f"expected a Genotype with fields {', '.join(_FIELDS)}, "
              f"got {type(genotype).__name__}")
    return canonical(*fields)


# --------------------------------------------------------------------------- text form
def format_genotype(genotype: Any) -> str:
    """DARTS's one-line repr: ``Genotype(normal=[('sep_conv_3x3', 0), ...], ...)``."""
    return repr(validate(genotype))


def _literal(node: ast.AST, where: str) -> Any:
    """The value of a literal expression (no names, no calls but ``range``/``list(range)``)."""
    if isinstance(node, ast.Constant) and (node.value is None
                                           or isinstance(node.value, (str, int, float))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e, where) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id == "range" and 1 <= len(node.args) <= 3:
            args = [_literal(a, where) for a in node.args]
            if all(_is_int(a) for a in args) and (len(args) < 3 or args[2] != 0):
                return list(range(*args))
        if node.func.id in ("list", "tuple") and len(node.args) == 1:
            inner = _literal(node.args[0], where)
            if isinstance(inner, (list, tuple)):
                return list(inner)
    try:
        shown = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse handles every parsed node
        shown = type(node).__name__
    if len(shown) > 40:
        shown = shown[:37] + "..."
    _fail(f"{where} holds {shown!r}, which is not a literal (only lists, tuples, strings, "
          "numbers and range(a, b) are read)")


def parse_genotype(text: str) -> Genotype:
    """``Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])`` ->
    canonical :class:`Genotype`; anything malformed raises one :class:`UserError` line."""
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
        elif isinstance(call.func, ast.Attribute):  # e.g. genotypes.Genotype(...)
            name = call.func.attr
    if name != "Genotype":
        _fail(f"expected Genotype(normal=..., normal_concat=..., reduce=..., "
              f"reduce_concat=...), got {src[:60]!r}")
    values: Dict[str, Any] = {}
    if len(call.args) > len(_FIELDS):
        _fail(f"Genotype takes {len(_FIELDS)} fields, got {len(call.args)} positional values")
    for field, arg in zip(_FIELDS, call.args):
        if isinstance(arg, ast.Starred):
            _fail("starred arguments are not read")
        values[field] = _literal(arg, field)
    for kw in call.keywords:
        if kw.arg is None:
            _fail("**arguments are not read")
        if kw.arg in ("connectN", "connects"):  # AutoDL-Projects' extra fields
            extra = _literal(kw.value, kw.arg)
            if extra is not None:
                _fail(f"{kw.arg}={extra!r} is not supported (only AutoDL's None)")
            continue
        if kw.arg not in _FIELDS:
            _fail(f"unknown field {kw.arg!r} (fields: {', '.join(_FIELDS)})")
        if kw.arg in values:
            _fail(f"field {kw.arg!r} given twice")
        values[kw.arg] = _literal(kw.value, kw.arg)
    missing = [f for f in _FIELDS if f not in values]
    if missing:
        _fail(f"missing field(s) {', '.join(missing)}")
    return canonical(*(values[f] for f in _FIELDS))


# --------------------------------------------------------------------------- JSON form
def to_json(genotype: Any) -> Dict[str, Any]:
    """``{"normal": [[op, idx], ...], "normal_concat": [...], "reduce": ..., ...}``."""
    g = validate(genotype)
    return {"normal": [[op, idx] for op, idx in g.normal],
            "normal_concat": list(g.normal_concat),
            "reduce": [[op, idx] for op, idx in g.reduce],
            "reduce_concat": list(g.reduce_concat)}


def from_json(data: Any) -> Genotype:
    if not isinstance(data, dict):
        _fail(f"expected a JSON object with {', '.join(_FIELDS)}, got {type(data).__name__}")
    missing = [f for f in _FIELDS if f not in data]
    if missing:
        _fail(f"JSON object lacks {', '.join(missing)}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        _fail(f"JSON object has unknown key(s) {', '.join(unknown)}")
    return canonical(*(data[f] for f in _FIELDS))


def used_ops(genotype: Genotype) -> List[str]:
    """The distinct ops a genotype uses, in :data:`KNOWN_OPS` order."""
    ops = {op for op, _ in list(genotype.normal) + list(genotype.reduce)}
    return [op for op in KNOWN_OPS if op in ops]
