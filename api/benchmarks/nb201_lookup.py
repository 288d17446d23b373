"""Look-ups in the NAS-Bench-201 table: what a tabular search asks instead of training a cell.

It answers for one dataset of NAS-Bench-201 what a trained candidate would: the search
signal (12-epoch validation accuracy) and, kept apart, the figure the benchmark reports for a
found cell (200-epoch test accuracy). It knows nothing of budgets or search loops.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

from api.benchmarks.nasbench201 import (REPORTED_COLUMNS, SIGNAL_COLUMNS, NB201Table,
                                        arch_strings)
from api.spaces.nasbench201.cell import Cell, index_of


def index_of_ops(ops: Sequence[int]) -> int:
    """API index of a cell given as 6 op indices (edges in string order, ops in
    :data:`~api.spaces.nasbench201.cell.OPS` order)."""
    return index_of(Cell.from_op_indices(ops))


class NB201Lookup:  # not an api.search Evaluator: it answers by table index, trains nothing
    """NAS-Bench-201 look-ups on one dataset, by API index."""

    metric = "valid_acc_12ep"

    def __init__(self, table: NB201Table, dataset: str) -> None:
        self.table = table
        self.dataset = dataset
        self.signal = table.signal(dataset)
        self.reported = table.reported(dataset)

    def evaluate(self, index: int) -> Tuple[float, float]:
        """(signal, reported figure) of cell ``index``."""
        return float(self.signal[index]), float(self.reported[index])

    def arch(self, index: int) -> str:
        return arch_strings()[index]

    def describe(self) -> Dict[str, Any]:
        """What decides the answers (a resumed search must see the same)."""
        return {"benchmark": self.table.fingerprint, "dataset": self.dataset,
                "signal": SIGNAL_COLUMNS[self.dataset],
                "reported": REPORTED_COLUMNS[self.dataset]}
