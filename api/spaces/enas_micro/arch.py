"""The ENAS / NAO micro cell pair: 40 integers, and its conversion to a DARTS ``Genotype``.

Layout (ENAS's ``fixed_arc``, NAO's ``arch_pool`` lines): the normal cell's 20 integers, then
the reduction cell's; each cell is 5 nodes x ``[idx1, op1, idx2, op2]``. ``idx`` 0 and 1 are
the cell inputs (c_{k-2}, c_{k-1}), ``idx`` i >= 2 is node i-2; a node sums ``op1(input idx1)``
and ``op2(input idx2)``, and the cell concatenates its loose ends. Text form: the integers
separated by single spaces (any whitespace parses). Ops: 0 sep_conv 3x3, 1 sep_conv 5x5, 2 avg
pool 3x3, 3 max pool 3x3, 4 identity; NAO's code continues with NAONet-A's 11-op NASNet-style
space, ops 5..15 (:data:`NAO_OPS`), which the ``nao`` space takes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from api.errors import UserError

#: The 5 ops of the ENAS micro space, by integer.
ENAS_OPS: Tuple[str, ...] = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3",
                             "identity")
#: NAO's full numbering: the 5 ENAS ops, then NAONet-A's 11-op space (NAO_V1 ``model.py``).
#: Named as NAO's ``dag.NAONet.json`` names them; 5 and 11 build the same modules as 4 and 3,
#: 14 differs from 2 only in counting the zero padding in its averages (as in NAO's code).
NAO_OPS: Tuple[str, ...] = ENAS_OPS + (
    "identity", "conv 1x1", "conv 3x3", "conv 1x3+3x1", "conv 1x7+7x1", "max_pool 2x2",
    "max_pool 3x3", "max_pool 5x5", "avg_pool 2x2", "avg_pool 3x3", "avg_pool 5x5")
#: ENAS op -> DARTS op name (``identity`` is DARTS's ``skip_connect``: identity at stride 1,
#: factorized reduce at stride 2, as in ENAS and NAO).
TO_DARTS: Dict[int, str] = {0: "sep_conv_3x3", 1: "sep_conv_5x5", 2: "avg_pool_3x3",
                            3: "max_pool_3x3", 4: "skip_connect"}
FROM_DARTS: Dict[str, int] = {v: k for k, v in TO_DARTS.items()}

NODES = 5
CELL_LEN = 4 * NODES
ARCH_LEN = 2 * CELL_LEN


@dataclass(frozen=True)
class MicroArch:
    """A normal and a reduction cell, 20 integers each (``[idx1, op1, idx2, op2]`` x 5)."""

    normal: Tuple[int, ...]
    reduce: Tuple[int, ...]

    def to_list(self) -> List[int]:
        return list(self.normal) + list(self.reduce)

    def to_string(self) -> str:
        return " ".join(map(str, self.to_list()))

    def __str__(self) -> str:
        return self.to_string()

    def ops_used(self) -> List[int]:
        cells = (self.normal, self.reduce)
        return sorted({c[4 * n + k] for c in cells for n in range(NODES) for k in (1, 3)})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def make_arch(values: Sequence[Any], num_ops: int = len(ENAS_OPS),
              what: str = "ENAS micro architecture") -> MicroArch:
    """40 integers -> :class:`MicroArch`, or one :class:`UserError` naming the first problem."""
    values = list(values)
    if len(values) != ARCH_LEN:
        raise UserError(f"an {what} has {ARCH_LEN} integers (normal cell then reduction cell, "
                        f"5 nodes x [idx1, op1, idx2, op2] each), got {len(values)}")
    for k, v in enumerate(values):
        if not _is_int(v):
            raise UserError(f"{what}: item {k} is {v!r}, not an integer")
        cell, pos = ("normal", "reduction")[k // CELL_LEN], k % CELL_LEN
        node, slot = pos // 4, pos % 4
        if slot in (0, 2):
            if not 0 <= v < node + 2:
                raise UserError(f"{what}: {cell} cell node {node} (item {k}) reads input {v}; "
                                f"it may read 0..{node + 1} (0, 1 = cell inputs, i >= 2 = node "
                                f"i-2)")
        elif not 0 <= v < num_ops:
            raise UserError(f"{what}: {cell} cell node {node} (item {k}) has op {v}; ops are "
                            f"0..{num_ops - 1}")
    return MicroArch(tuple(values[:CELL_LEN]), tuple(values[CELL_LEN:]))


def parse_arch(text: str, num_ops: int = len(ENAS_OPS),
               what: str = "ENAS micro architecture") -> MicroArch:
    if not isinstance(text, str):
        raise UserError(f"an {what} string is text, got {type(text).__name__}")
    tokens = text.split()
    values: List[int] = []
    for k, tok in enumerate(tokens):
        try:
            values.append(int(tok))
        except ValueError:
            raise UserError(f"{what}: item {k} is {tok[:20]!r}, not an integer (expected "
                            f"{ARCH_LEN} integers separated by spaces)") from None
    return make_arch(values, num_ops, what)


def looks_like(text: str) -> bool:
    tokens = text.split()
    return len(tokens) == ARCH_LEN and all(t.isdigit() for t in tokens)


def to_json(arch: MicroArch) -> Dict[str, Any]:
    return {"normal": list(arch.normal), "reduce": list(arch.reduce)}


def from_json(data: Any, num_ops: int = len(ENAS_OPS),
              what: str = "ENAS micro architecture") -> MicroArch:
    if isinstance(data, dict) and "normal" in data and "reduce" in data:
        normal, reduce = data["normal"], data["reduce"]
        if not isinstance(normal, list) or not isinstance(reduce, list):
            raise UserError(f"{what} in JSON: 'normal' and 'reduce' must be lists of "
                            f"{CELL_LEN} integers")
        if len(normal) != CELL_LEN or len(reduce) != CELL_LEN:
            raise UserError(f"{what} in JSON: 'normal' and 'reduce' hold {CELL_LEN} integers "
                            f"each, got {len(normal)} and {len(reduce)}")
        return make_arch(normal + reduce, num_ops, what)
    if isinstance(data, dict) and isinstance(data.get("arc"), (list, str)):
        data = data["arc"]
    if isinstance(data, str):
        return parse_arch(data, num_ops, what)
    if isinstance(data, list):
        return make_arch(data, num_ops, what)
    raise UserError(f"{what} in JSON is {{\"normal\": [{CELL_LEN} integers], \"reduce\": "
                    f"[{CELL_LEN} integers]}}")


# ---------------------------------------------------------------------- DARTS genotype
def loose_ends(cell: Sequence[int]) -> List[int]:
    """The intermediate nodes (2..6) that no node reads: what the cell concatenates."""
    used = {cell[4 * n] for n in range(NODES)} | {cell[4 * n + 2] for n in range(NODES)}
    return [i for i in range(2, NODES + 2) if i not in used]


def loose_inputs(cell: Sequence[int]) -> List[int]:
    """The cell inputs (0, 1) that no node reads. ENAS and NAO concatenate these too (reduced
    in a reduction cell); a DARTS genotype cannot hold them, so a DARTS network drops them."""
    used = {cell[4 * n] for n in range(NODES)} | {cell[4 * n + 2] for n in range(NODES)}
    return [i for i in (0, 1) if i not in used]


def _cell_pairs(cell: Sequence[int]) -> List[Tuple[str, int]]:
    pairs: List[Tuple[str, int]] = []
    for n in range(NODES):
        idx1, op1, idx2, op2 = cell[4 * n: 4 * n + 4]
        pairs += [(TO_DARTS[op1], idx1), (TO_DARTS[op2], idx2)]
    return pairs


def to_genotype(arch: MicroArch):
    """The DARTS ``Genotype`` of an ENAS micro architecture: pairs ``(op, idx)`` in node
    order, DARTS op names, concat = the loose-end nodes. Ops must be the 5 ENAS ops."""
    from api.spaces.darts.genotype import Genotype

    for op in arch.ops_used():
        if op not in TO_DARTS:
            raise UserError(f"op {op} ({NAO_OPS[op] if op < len(NAO_OPS) else '?'}) has no "
                            "DARTS equivalent: only ENAS's 5 ops (0..4) convert to a genotype")
    return Genotype(_cell_pairs(arch.normal), loose_ends(arch.normal),
                    _cell_pairs(arch.reduce), loose_ends(arch.reduce))


def from_genotype(genotype: Any) -> MicroArch:
    """A DARTS genotype -> the ENAS micro architecture, when it is one: 5 nodes per cell, ENAS's
    ops only, and concat = the loose-end nodes (else one :class:`UserError`)."""
    fields = ("normal", "normal_concat", "reduce", "reduce_concat")
    try:
        normal, normal_concat, reduce, reduce_concat = (getattr(genotype, f) for f in fields)
    except AttributeError:
        raise UserError(f"not a DARTS genotype: {type(genotype).__name__}") from None
    values: List[Any] = []
    for name, pairs in (("normal", normal), ("reduce", reduce)):
        pairs = list(pairs)
        if len(pairs) != 2 * NODES:
            raise UserError(f"genotype's {name} cell has {len(pairs) // 2} nodes; an ENAS micro "
                            f"cell has {NODES}")
        for k, pair in enumerate(pairs):
            if not isinstance(pair, (list, tuple)) or len(pair) < 2:
                raise UserError(f"genotype's {name} pair {k} is {pair!r}; expected (op, input)")
            op, idx = pair[0], pair[1]
            if op not in FROM_DARTS:
                raise UserError(f"genotype's {name} pair {k} uses {op!r}, outside the ENAS "
                                f"micro ops ({', '.join(FROM_DARTS)})")
            values += [idx, FROM_DARTS[op]]
    arch = make_arch(values)
    for name, cell, concat in (("normal", arch.normal, normal_concat),
                               ("reduce", arch.reduce, reduce_concat)):
        want = loose_ends(cell)
        if not isinstance(concat, (list, tuple, range)) or sorted(concat) != want:
            raise UserError(f"genotype's {name}_concat is {list(concat)}; an ENAS micro cell "
                            f"concatenates its loose ends {want}")
    return arch
