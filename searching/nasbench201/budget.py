"""The query budget of a tabular search: distinct cells, as the table has no training times.

Every method asks :meth:`QueryBudget.query` for a cell's signal: a cell already queried is
answered free, a new one costs one query. When the budget is spent, or a method keeps asking
only for cells it has seen (:data:`STALL_LIMIT` repeats in a row), the next new query raises
:class:`SearchOver` and the search ends with the best cell by signal (the first of equal
signals). Replay: given a journal's records, the first queries must be exactly those cells
(checked; their hook is not called), which rebuilds a deterministic method's whole state.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

from api.errors import UserError
from api.benchmarks.nb201_lookup import NB201Lookup, index_of_ops

#: consecutive repeated queries after which a search is declared stalled
STALL_LIMIT = 10_000


class SearchOver(Exception):
    """The budget is spent (or the search stalled): no further new cell may be queried."""


class QueryBudget:
    def __init__(self, evaluator: NB201Lookup, budget: int,
                 on_query: Optional[Callable[[Dict], None]] = None,
                 replay: Sequence[Dict] = ()) -> None:
        self.evaluator = evaluator
        self.budget = int(budget)
        self.on_query = on_query
        self.replay = list(replay)
        self.records: List[Dict] = []
        self._signal: Dict[int, float] = {}
        self.best: Optional[Dict] = None
        self.repeats = 0
        self.stalled = False

    def query(self, ops: Sequence[int]) -> float:
        """The signal of the cell with op indices ``ops`` (one query if it is new)."""
        return self.query_index(index_of_ops(ops))

    def query_index(self, index: int) -> float:
        if index in self._signal:
            self.repeats += 1
            if self.repeats >= STALL_LIMIT:
                self.stalled = True
                raise SearchOver("stalled")
            return self._signal[index]
        if len(self.records) >= self.budget or self.stalled:
            raise SearchOver("budget")
        self.repeats = 0
        signal, reported = self.evaluator.evaluate(index)
        n = len(self.records) + 1
        if self.best is None or signal > self.best["signal"]:
            self.best = {"index": index, "signal": signal, "reported": reported}
        rec = {"query": n, "index": index, "arch": self.evaluator.arch(index),
               "signal": signal, "reported": reported, "best_index": self.best["index"],
               "best_signal": self.best["signal"], "best_reported": self.best["reported"]}
        self._signal[index] = signal
        self.records.append(rec)
        if n <= len(self.replay):
            if self.replay[n - 1].get("index") != index:
                raise UserError(f"--resume: query {n} is cell {index} but the journal holds "
                                f"{self.replay[n - 1].get('index')}: the journal is not this "
                                "search's (same flags and benchmark file?)")
        elif self.on_query is not None:
            self.on_query(rec)
        return signal

    @property
    def spent(self) -> bool:
        return len(self.records) >= self.budget
