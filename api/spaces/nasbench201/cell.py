"""The NAS-Bench-201 cell: 4 nodes, 6 edges (every node j takes every earlier node i), one of
5 ops per edge; and its benchmark string, JSON form and API index.

Edges are kept in the benchmark string's order: (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2),
so ``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|`` is ``Cell((a, b, c, d, e, f))``. Node 0 is the cell input,
node 3 its output; ``none`` edges contribute zeros (they still count as edges of the DAG).

API index: the benchmark numbers its 15,625 cells by enumerating all op assignments (edges in
the order above, the first edge varying slowest, ops in :data:`OPS` order) and shuffling that
list with Python's ``random.seed(88); random.shuffle``. :func:`arch_at` / :func:`index_of`
reproduce it exactly (checked against the table's ``arch`` column for all 15,625 rows).
"""
from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from api.errors import UserError

#: The benchmark's ops, in its own order (``NAS_BENCH_201`` in AutoDL-Projects).
OPS: Tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (to node, from node) of each edge, in string order.
EDGES: Tuple[Tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_ARCHS = len(OPS) ** len(EDGES)  # 15,625
_SHUFFLE_SEED = 88

_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@dataclass(frozen=True)
class Cell:
    """One NAS-Bench-201 cell: the op of each of the 6 edges, in string order."""

    ops: Tuple[str, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if len(ops) != len(EDGES):
            raise UserError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} ops")
        for op in ops:
            if op not in OPS:
                raise UserError(f"unknown NAS-Bench-201 op {op!r} (ops: {', '.join(OPS)})")
        object.__setattr__(self, "ops", ops)

    # ------------------------------------------------------------------ views
    def nodes(self) -> List[List[Tuple[str, int]]]:
        """Per node 1..3, its ``(op, input node)`` pairs (the benchmark's ``Structure`` nodes)."""
        out: List[List[Tuple[str, int]]] = [[], [], []]
        for (to, frm), op in zip(EDGES, self.ops):
            out[to - 1].append((op, frm))
        return out

    def edges(self) -> List[Tuple[int, int, str]]:
        """``(from, to, op)`` for every edge."""
        return [(frm, to, op) for (to, frm), op in zip(EDGES, self.ops)]

    def op_indices(self) -> Tuple[int, ...]:
        return tuple(OPS.index(op) for op in self.ops)

    @classmethod
    def from_op_indices(cls, indices: Sequence[int]) -> "Cell":
        try:
            return cls(tuple(OPS[int(i)] for i in indices))
        except (IndexError, ValueError, TypeError):
            raise UserError(f"NAS-Bench-201 op indices must be 6 integers in 0..{len(OPS) - 1}, "
                            f"got {list(indices)!r}") from None

    # ------------------------------------------------------------------ text form
    def to_string(self) -> str:
        groups = []
        for node in self.nodes():
            groups.append("|" + "|".join(f"{op}~{i}" for op, i in node) + "|")
        return "+".join(groups)

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str) -> "Cell":
        if not isinstance(text, str):
            raise UserError(f"a NAS-Bench-201 cell string is text, got {type(text).__name__}")
        s = text.strip()
        short = s if len(s) <= 120 else s[:117] + "..."
        groups = s.split("+")
        if len(groups) != 3:
            raise UserError(f"malformed NAS-Bench-201 cell {short!r}: expected 3 nodes separated "
                            f"by '+' (like {_EXAMPLE}), got {len(groups)}")
        ops: List[str] = []
        for node, group in enumerate(groups, start=1):
            if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
                raise UserError(f"malformed NAS-Bench-201 cell {short!r}: node {node} "
                                f"{group!r} must look like |op~0|op~1|")
            items = group[1:-1].split("|")
            if len(items) != node:
                raise UserError(f"malformed NAS-Bench-201 cell {short!r}: node {node} must have "
                                f"{node} input(s) (~0..~{node - 1}), got {len(items)}")
            for expect, item in enumerate(items):
                m = re.fullmatch(r"([A-Za-z0-9_]+)~(\d+)", item)
                if not m:
                    raise UserError(f"malformed NAS-Bench-201 cell {short!r}: edge {item!r} of "
                                    f"node {node} must be op~input")
                op, src = m.group(1), int(m.group(2))
                if op not in OPS:
                    raise UserError(f"unknown NAS-Bench-201 op {op!r} in {short!r} "
                                    f"(ops: {', '.join(OPS)})")
                if src != expect:
                    raise UserError(f"malformed NAS-Bench-201 cell {short!r}: node {node} lists "
                                    f"input ~{src} where ~{expect} belongs (inputs ~0..~{node - 1}"
                                    " in order)")
                ops.append(op)
        return cls(tuple(ops))

    # ------------------------------------------------------------------ JSON form
    def to_dict(self) -> Dict[str, Any]:
        return {"nodes": [[[op, i] for op, i in node] for node in self.nodes()]}

    @classmethod
    def from_dict(cls, data: Any) -> "Cell":
        if isinstance(data, dict) and isinstance(data.get("arch"), str):
            return cls.from_string(data["arch"])
        nodes = data.get("nodes") if isinstance(data, dict) else None
        if not isinstance(nodes, list) or len(nodes) != 3:
            raise UserError("a NAS-Bench-201 architecture in JSON is {\"nodes\": [[[op, 0]], "
                            "[[op, 0], [op, 1]], [[op, 0], [op, 1], [op, 2]]]}")
        ops: List[str] = []
        for node, pairs in enumerate(nodes, start=1):
            if not isinstance(pairs, list) or len(pairs) != node:
                raise UserError(f"NAS-Bench-201 JSON: node {node} must list {node} [op, input] "
                                "pairs")
            for expect, pair in enumerate(pairs):
                if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                        or not isinstance(pair[0], str) or pair[1] != expect
                        or isinstance(pair[1], bool)):
                    raise UserError(f"NAS-Bench-201 JSON: node {node}'s pair {pair!r} must be "
                                    f"[op, {expect}]")
                ops.append(pair[0])
        return cls(tuple(ops))


# ---------------------------------------------------------------------- API index order
_ORDER: List[Tuple[int, ...]] = []
_INDEX: Dict[Tuple[int, ...], int] = {}


def _order() -> List[Tuple[int, ...]]:
    if not _ORDER:
        archs = list(itertools.product(range(len(OPS)), repeat=len(EDGES)))
        random.Random(_SHUFFLE_SEED).shuffle(archs)
        _ORDER.extend(archs)
        _INDEX.update((a, i) for i, a in enumerate(archs))
    return _ORDER


def arch_at(index: int) -> Cell:
    """The cell with benchmark (API) index ``index`` (0..15,624)."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < NUM_ARCHS:
        raise UserError(f"NAS-Bench-201 index must be an integer in 0..{NUM_ARCHS - 1}, "
                        f"got {index!r}")
    return Cell.from_op_indices(_order()[index])


def index_of(cell: Cell) -> int:
    """The benchmark (API) index of ``cell``."""
    _order()
    return _INDEX[cell.op_indices()]


def all_cells() -> List[Cell]:
    """All 15,625 cells, in API index order."""
    return [Cell.from_op_indices(a) for a in _order()]
