"""The cell graph: a DAG over N nodes that AutoShrink shrinks edge by edge.

A cell is an upper-triangular 0/1 adjacency ``mask`` (``mask[i, j] == 1`` is an edge i -> j,
only i < j) plus ``ops_def``, one op name per node (node 0 is the cell input; its entry is ignored).
The graph knows nothing about training: it answers structural questions (which edges count,
which nodes are active, which are leaves), gives a canonical hash so that masks pruning to
the same active graph are recognised, and serialises to pickle, JSON and a one-line text form.

>>> g = CellGraph.complete(4, ["input", "SepConv3x3", "Conv1x1", "SepConv3x3"])
>>> g.num_edges
6
>>> g.remove_edge(0, 1).remove_edge(0, 2).num_edges  # node 1 and 2 lose their inputs
1
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from api.errors import UserError

FORMAT_VERSION = 1
Edge = Tuple[int, int]

# Metadata a search attaches to a graph it saves (graph-best, graph-<ratio>).
META_FIELDS = ("score", "accuracy", "perplexity", "macs", "params", "step", "seconds")


def _plain(value: Any) -> Any:
    """Convert numpy scalars/arrays nested in metadata into JSON-friendly Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class CellGraph:
    """A DAG cell: ``mask`` (N x N, upper-triangular), ``ops_def`` (N op names), metadata.

    Instances are immutable in spirit: structural edits return new graphs.
    """

    def __init__(self, mask: Any, ops_def: Sequence[str], space: str = "cnn",
                 settings: Optional[Dict[str, Any]] = None, **meta: Any) -> None:
        mask = np.array(mask, dtype=np.int64)
        if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
            raise UserError(f"cell mask must be a square matrix, got shape {mask.shape}")
        n = mask.shape[0]
        if n < 2:
            raise UserError(f"a cell needs at least 2 nodes, got {n}")
        if not np.isin(mask, (0, 1)).all():
            raise UserError("cell mask entries must be 0 or 1")
        if np.tril(mask).any():
            raise UserError("cell mask must be strictly upper-triangular (edges i->j need i < j)")
        if len(ops_def) != n:
            raise UserError(f"ops_def has {len(ops_def)} entries for a {n}-node cell")
        self.mask = mask
        self.ops_def = [str(op) for op in ops_def]
        self.space = space
        self.settings = dict(settings or {})
        for field in META_FIELDS:
            setattr(self, field, None)
        for key, value in meta.items():
            setattr(self, key, value)

    # ----------------------------------------------------------------- construction
    @classmethod
    def complete(cls, num_nodes: int, ops_def: Sequence[str], **kwargs: Any) -> "CellGraph":
        """The complete DAG: every i < j edge (N=8 gives 28 edges, N=6 gives 15)."""
        if num_nodes < 2:
            raise UserError(f"--nodes must be at least 2, got {num_nodes}")
        mask = np.triu(np.ones((num_nodes, num_nodes), dtype=np.int64), k=1)
        return cls(mask, ops_def, **kwargs)

    @classmethod
    def random(cls, num_nodes: int, ops_def: Sequence[str], prob: float,
               rng: np.random.Generator, **kwargs: Any) -> "CellGraph":
        """Each i < j edge kept independently with probability ``prob`` (1.0: complete)."""
        full = cls.complete(num_nodes, ops_def, **kwargs)
        if prob >= 1.0:
            return full
        keep = rng.random(full.mask.shape) < prob
        return full.with_mask(full.mask * keep).optimize()

    def with_mask(self, mask: Any) -> "CellGraph":
        """Same ops and settings, another mask; metadata is not carried over."""
        return CellGraph(mask, self.ops_def, space=self.space, settings=self.settings)

    # ----------------------------------------------------------------- structure
    @property
    def num_nodes(self) -> int:
        return int(self.mask.shape[0])

    def reachable(self) -> np.ndarray:
        """Boolean vector: node reachable from node 0 (node 0 always is)."""
        reach = np.zeros(self.num_nodes, dtype=bool)
        reach[0] = True
        for j in range(1, self.num_nodes):
            reach[j] = bool((self.mask[:j, j].astype(bool) & reach[:j]).any())
        return reach

    def active_mask(self) -> np.ndarray:
        """The mask restricted to edges whose source is reachable (the edges that count)."""
        return self.mask * self.reachable()[:, None]

    def optimize(self) -> "CellGraph":
        """Remove edges whose source is unreachable from node 0."""
        g = self.with_mask(self.active_mask())
        g.__dict__.update({k: v for k, v in self.__dict__.items() if k in META_FIELDS})
        return g

    @property
    def edge_list(self) -> List[Edge]:
        """Counted edges (source reachable), in row-major order."""
        rows, cols = np.nonzero(self.active_mask())
        return [(int(i), int(j)) for i, j in zip(rows, cols)]

    @property
    def num_edges(self) -> int:
        return int(self.active_mask().sum())

    @property
    def edges(self) -> int:
        """Number of counted edges (the original's ``graph.edges`` attribute)."""
        return self.num_edges

    @property
    def active_nodes(self) -> List[int]:
        """Reachable nodes other than 0 (each has an input from a reachable node)."""
        return [int(j) for j in np.nonzero(self.reachable())[0] if j != 0]

    def inputs(self, node: int) -> List[int]:
        """Sources of the counted edges into ``node``."""
        return [int(i) for i in np.nonzero(self.active_mask()[:, node])[0]]

    @property
    def leaves(self) -> List[int]:
        """Active nodes with no outgoing counted edge; they form the cell output."""
        am = self.active_mask()
        return [j for j in self.active_nodes if not am[j].any()]

    @property
    def is_empty(self) -> bool:
        """No active node: the cell is identity/residual only."""
        return not self.active_nodes

    def remove_edge(self, i: int, j: int) -> "CellGraph":
        """A new, optimized graph without edge i -> j."""
        if not self.mask[i, j]:
            raise ValueError(f"edge {i}->{j} is not in the graph")
        mask = self.mask.copy()
        mask[i, j] = 0
        return self.with_mask(mask).optimize()

    # ----------------------------------------------------------------- identity
    def canonical_key(self) -> str:
        """Text of the active graph: equal for masks that prune to the same computation."""
        active = self.active_nodes
        ops = ",".join(f"{j}:{self.ops_def[j]}" for j in active)
        edges = ",".join(f"{i}>{j}" for i, j in self.edge_list)
        return f"n={self.num_nodes};ops={ops};edges={edges}"

    def canonical_hash(self) -> str:
        return hashlib.sha1(self.canonical_key().encode()).hexdigest()[:16]

    def same_structure(self, other: "CellGraph") -> bool:
        return np.array_equal(self.mask, other.mask) and self.ops_def == other.ops_def

    # ----------------------------------------------------------------- text forms
    def to_string(self) -> str:
        """One-line text form, e.g. ``ops=input,SepConv3x3,Conv1x1 edges=0-1,0-2,1-2``."""
        rows, cols = np.nonzero(self.mask)
        edges = ",".join(f"{i}-{j}" for i, j in zip(rows, cols))
        return f"ops={','.join(self.ops_def)} edges={edges}"

    @classmethod
    def from_string(cls, text: str, **kwargs: Any) -> "CellGraph":
        try:
            fields = dict(part.split("=", 1) for part in text.split())
            ops = fields["ops"].split(",")
            mask = np.zeros((len(ops), len(ops)), dtype=np.int64)
            for edge in filter(None, fields.get("edges", "").split(",")):
                i, j = (int(v) for v in edge.split("-"))
                mask[i, j] = 1
        except (KeyError, ValueError, IndexError) as exc:
            raise UserError(f"cannot parse cell text {text!r} "
                            "(expected 'ops=input,OP,... edges=0-1,1-2,...')") from exc
        return cls(mask, ops, **kwargs)

    def __repr__(self) -> str:
        edges = " ".join(f"{i}->{j}" for i, j in self.edge_list)
        ops = ", ".join(f"{j}:{op}" for j, op in enumerate(self.ops_def) if j > 0)
        extra = ""
        if self.score is not None:
            extra = f", score={self.score:.4f}"
        return (f"CellGraph({self.space}, nodes={self.num_nodes}, edges={self.num_edges} "
                f"[{edges}], ops=[{ops}], leaves={self.leaves}{extra})")

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> Dict[str, Any]:
        meta = {k: _plain(getattr(self, k, None)) for k in META_FIELDS}
        meta["edges"] = self.num_edges
        return {
            "format": "autoshrink-cell-graph",
            "format_version": FORMAT_VERSION,
            "space": self.space,
            "mask": self.mask.tolist(),
            "ops_def": list(self.ops_def),
            "settings": _plain(self.settings),
            "meta": meta,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "graph") -> "CellGraph":
        if not isinstance(data, dict) or data.get("format") != "autoshrink-cell-graph":
            raise UserError(f"{source} is not an AutoShrink cell graph")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UserError(f"{source} has graph format version {version!r}; this AutoShrink "
                            f"reads versions up to {FORMAT_VERSION}: upgrade the package")
        try:
            meta = dict(data.get("meta") or {})
            meta.pop("edges", None)  # derived from the mask
            return cls(data["mask"], data["ops_def"], space=data.get("space", "cnn"),
                       settings=data.get("settings") or {}, **meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{source} is a damaged cell graph ({exc})") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def __reduce__(self):
        # Pickles hold only this rebuild function and plain Python values, so the
        # restricted loader (api.spaces.dag.graph_io) can refuse every other global.
        return (_rebuild_graph, (self.to_dict(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CellGraph) and self.same_structure(other)

    def __hash__(self) -> int:
        return hash(self.to_string())


def _rebuild_graph(data: Dict[str, Any]) -> CellGraph:
    return CellGraph.from_dict(data)

