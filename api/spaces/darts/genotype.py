"""DARTS's ``Genotype``: the architecture type of the DARTS CNN space (and, through
conversion, of the ENAS/NAO micro space).

``normal``/``reduce`` list ``(op, input)`` pairs, two per intermediate node; inputs 0 and 1 are
the cell inputs c_{k-2} and c_{k-1}, input i >= 2 is intermediate node i-2; ``normal_concat`` /
``reduce_concat`` are the nodes (same numbering) concatenated as the cell's output. The
canonical form (:func:`parse`, :func:`from_json`, :func:`canonical`) holds ``(str, int)`` pairs
and int concat lists, so its ``repr`` is DARTS's own text and DARTS's genotypes compare equal to
ours. :func:`parse` reads that text, and AutoDL/GDAS's printed variants, without ``eval``
(:mod:`api.spaces.genotype_text`); anything else raises one :class:`UserError` line.

Fidelity notes: docs/fidelity/darts.md.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Dict, List, Tuple

from api.spaces.genotype_text import GenotypeText, is_int as _is_int

#: The searchable ops of the DARTS CNN space, in DARTS's ``PRIMITIVES`` order.
PRIMITIVES: Tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                               "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
#: Ops outside the search space that DARTS's ``operations.py`` still builds, needed by the
#: published NASNet-A, AmoebaNet-A and PNASNet cells.
EXTRA_OPS: Tuple[str, ...] = ("sep_conv_7x7", "conv_7x1_1x7")
KNOWN_OPS: Tuple[str, ...] = PRIMITIVES + EXTRA_OPS

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
#: Text, JSON and object reading (shared with the RNN genotype's).
_TEXT = GenotypeText(
    "DARTS genotype", _FIELDS,
    call_form="Genotype(normal=..., normal_concat=..., reduce=..., reduce_concat=...)",
    too_many=f"Genotype takes {len(_FIELDS)} fields, got {{n}} positional values",
    fields_hint=f"fields: {', '.join(_FIELDS)}", none_fields=("connectN", "connects"),
    none=True, floats=True, ranges_as_lists=True)
_fail = _TEXT.fail


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
def _ops_hint() -> str:
    return (f"the DARTS space's ops are {', '.join(PRIMITIVES)} "
            f"(fixed networks also build {', '.join(EXTRA_OPS)})")


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
    return _TEXT.check_indices(field, concat, "node", 2, steps + 1, "an intermediate node")


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
    return canonical(*_TEXT.object_fields(genotype))


# --------------------------------------------------------------------------- text form
def format_genotype(genotype: Any) -> str:
    """DARTS's one-line repr: ``Genotype(normal=[('sep_conv_3x3', 0), ...], ...)``."""
    return repr(validate(genotype))


def parse_genotype(text: str) -> Genotype:
    """``Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])`` ->
    canonical :class:`Genotype`; anything malformed raises one :class:`UserError` line."""
    values = _TEXT.parse_fields(text)
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
    return canonical(*_TEXT.json_fields(data))


def used_ops(genotype: Genotype) -> List[str]:
    """The distinct ops a genotype uses, in :data:`KNOWN_OPS` order."""
    ops = {op for op, _ in list(genotype.normal) + list(genotype.reduce)}
    return [op for op in KNOWN_OPS if op in ops]
