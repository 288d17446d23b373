"""The NAS-Bench-201 search space (Dong & Yang, ICLR 2020; NATS-Bench topology space).

Architecture: :class:`Cell` (6 edges, 5 ops). Text form: the benchmark's string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; JSON: ``{"nodes": [[[op, 0]], ...]}``; the
benchmark's API index through :meth:`NASBench201Space.index` / :meth:`NASBench201Space.arch_at`.
Network: the benchmark's ``TinyNetwork`` (C=16, N=5). Cost: :meth:`NASBench201Space.count`
counts params and FLOPs exactly as the benchmark's ``params_M_*`` / ``flops_M_*`` columns.
Supernet: :meth:`NASBench201Space.supernet`, AutoDL's DARTS/GDAS search model
(:mod:`api.spaces.nasbench201.supernet`).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from api.errors import UserError
from api.spaces.base import SearchSpace, dataset_info
from api.spaces.nasbench201.cell import (EDGES, NUM_ARCHS, OPS, Cell, all_cells, arch_at,
                                         index_of)

__all__ = ["Cell", "OPS", "EDGES", "NUM_ARCHS", "NASBench201Space", "arch_at", "index_of",
           "all_cells"]

#: The datasets of the benchmark (ImageNet16-120 is ``imagenet16``: 16x16, 120 classes).
BENCHMARK_DATASETS = ("cifar10", "cifar100", "imagenet16")

#: (dataset, C, N) -> (all-none cost, per-op cost of one edge), filled on first use.
_COST_CACHE: Dict[Tuple, Any] = {}


class NASBench201Space(SearchSpace):
    name = "nas-bench-201"
    kind = "cnn"
    ops = OPS
    edges = EDGES
    num_archs = NUM_ARCHS

    # ------------------------------------------------------------------ formats
    def parse(self, text: str) -> Cell:
        return Cell.from_string(text)

    def format(self, arch: Cell) -> str:
        return self._check(arch).to_string()

    def to_json(self, arch: Cell) -> Dict[str, Any]:
        return self._check(arch).to_dict()

    def from_json(self, data: Dict[str, Any]) -> Cell:
        return Cell.from_dict(data)

    def looks_like(self, text: str) -> bool:
        text = text.strip()
        return text.startswith("|") and "~" in text

    @staticmethod
    def _check(arch: Any) -> Cell:
        if not isinstance(arch, Cell):
            raise UserError(f"not a NAS-Bench-201 cell: {type(arch).__name__}")
        return arch

    # ------------------------------------------------------------------ benchmark index
    def index(self, arch: Cell) -> int:
        """The benchmark's API index of ``arch`` (row of the table)."""
        return index_of(self._check(arch))

    def arch_at(self, index: int) -> Cell:
        return arch_at(index)

    def all_archs(self):
        return all_cells()

    # ------------------------------------------------------------------ one op per edge
    def arch_from_op_indices(self, indices) -> Cell:
        """The cell whose edge e (string order, :attr:`edges`) carries ``ops[indices[e]]``
        (the sampling methods draw cells this way: RSPS, SETN)."""
        return Cell.from_op_indices(indices)

    def arch_op_indices(self, arch: Cell) -> Tuple[int, ...]:
        """Per edge (string order) the index of its op in :attr:`ops`."""
        return self._check(arch).op_indices()

    # ------------------------------------------------------------------ network and cost
    def build_network(self, arch: Cell, dataset: str = "cifar10", C: int = 16, N: int = 5,
                      **kwargs: Any):
        """The benchmark's ``TinyNetwork`` for ``dataset`` (classes from the dataset; the input
        size does not change the network)."""
        from api.spaces.nasbench201.network import TinyNetwork

        if kwargs:
            raise UserError(f"the nas-bench-201 network takes C and N, not "
                            f"{', '.join(sorted(kwargs))}")
        _, classes = dataset_info(dataset)
        return TinyNetwork(self._check(arch), classes, C=int(C), N=int(N))

    def supernet(self, dataset: str = "cifar10", C: int = 16, N: int = 5, affine: bool = False,
                 track_running_stats: bool = True, num_classes: Optional[int] = None,
                 **kwargs: Any):
        """AutoDL's NB201 search model (DARTS/GDAS; also runs a fixed cell for ENAS-style
        weight sharing): :class:`~api.spaces.nasbench201.supernet.NASBench201Supernet`.
        ``affine``/``track_running_stats`` are the cells' BN (AutoDL searches with
        ``affine=False`` and a ``--track_running_stats`` flag); ``num_classes`` overrides the
        dataset's (a user's own image folder)."""
        from api.spaces.nasbench201.supernet import NASBench201Supernet

        if kwargs:
            raise UserError(f"the nas-bench-201 supernet takes C, N, affine, "
                            f"track_running_stats and num_classes, not "
                            f"{', '.join(sorted(kwargs))}")
        classes = dataset_info(dataset)[1] if num_classes is None else int(num_classes)
        if int(C) < 1 or int(N) < 1 or classes < 1:
            raise UserError(f"the nas-bench-201 supernet needs C, N and classes >= 1, got "
                            f"C={C}, N={N}, classes={classes}")
        return NASBench201Supernet(classes, C=int(C), N=int(N), affine=bool(affine),
                                   track_running_stats=bool(track_running_stats))

    def count(self, arch: Cell, dataset: str = "cifar10", C: int = 16, N: int = 5,
              cache: bool = True, **kwargs: Any) -> Tuple[int, int]:
        """(params, FLOPs) of one image, as the benchmark counts them (AutoDL's
        ``get_model_infos``): params include BN and the classifier; FLOPs are conv and linear
        multiply-accumulates plus the classifier's bias adds (``num_classes`` more than
        :func:`api.spaces.complexity.count_macs`); pooling is not counted. ``params / 1e6`` and
        ``FLOPs / 1e6`` equal the table's ``params_M_<dataset>`` / ``flops_M_<dataset>``.

        Every edge of every cell is a stride-1 op at its stage's width and resolution, so the
        cost is the all-``none`` network's plus, per edge, what its op adds, whatever the
        edge: by default the real network is built and hooked once with no op and once per
        op on a single edge (per dataset, C and N), and cells are summed from those;
        ``cache=False`` builds and hooks this cell's own network instead."""
        if kwargs:
            raise UserError(f"the nas-bench-201 network takes C and N, not "
                            f"{', '.join(sorted(kwargs))}")
        cell = self._check(arch)
        if not cache:
            return self._hooked_cost(cell, dataset, C, N)
        base, per_op = self._edge_costs(dataset, int(C), int(N))
        params, flops = base
        for op in cell.ops:
            params += per_op[op][0]
            flops += per_op[op][1]
        return params, flops

    def _hooked_cost(self, cell: Cell, dataset: str, C: int, N: int) -> Tuple[int, int]:
        from api.spaces.nasbench201.network import benchmark_cost

        shape, _ = dataset_info(dataset)
        params, flops = benchmark_cost(self.build_network(cell, dataset, C=C, N=N), shape)
        return int(params), int(round(flops))

    def _edge_costs(self, dataset: str, C: int, N: int):
        key = (dataset, C, N)
        if key not in _COST_CACHE:
            none = "none"
            base = self._hooked_cost(Cell((none,) * 6), dataset, C, N)
            per_op = {none: (0, 0)}
            for op in OPS[1:]:
                p, f = self._hooked_cost(Cell((op,) + (none,) * 5), dataset, C, N)
                per_op[op] = (p - base[0], f - base[1])
            _COST_CACHE[key] = (base, per_op)
        return _COST_CACHE[key]

    def benchmark_cost(self, arch: Cell, dataset: str = "cifar10") -> Tuple[float, float]:
        """(params_M, flops_M) rounded as the table prints them (6 and 5 decimals)."""
        params, flops = self.count(arch, dataset)
        return round(params / 1e6, 6), round(flops / 1e6, 5)
