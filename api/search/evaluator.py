"""What an evaluator is: train one candidate cell from scratch and report what it measured.

>>> class Constant(Evaluator):
...     metric = "accuracy"
...     def evaluate(self, graph, seed):
...         return Result(status="ok", metrics={"accuracy": 0.5}, macs=1e6, params=10)
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

from api.graph import CellGraph


@dataclass
class Result:
    """One candidate's outcome. ``status`` is ``ok`` or ``failed`` (with ``error``)."""

    status: str = "ok"
    metrics: Dict[str, float] = field(default_factory=dict)
    macs: float = 0.0
    params: int = 0
    seconds: float = 0.0
    epochs: int = 0
    error: Optional[str] = None
    curve: List[Dict[str, float]] = field(default_factory=list)  # per-epoch figures

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Task:
    """One candidate to train: a key unique within the search, the graph, and its seed."""

    key: str
    graph: CellGraph
    seed: int


class Evaluator(ABC):
    """Trains a candidate graph from scratch; knows nothing about the search loop.

    ``metric`` names the quality figure in ``Result.metrics`` (``accuracy`` or ``perplexity``)
    and ``higher_is_better`` its direction, so logs report the best value correctly.
    Evaluators must be picklable so that worker processes can run them.
    """

    metric: str = "accuracy"
    higher_is_better: bool = True
    #: CPU intra-op threads per candidate (0: leave torch's setting). PyTorch's CPU kernels
    #: reduce in a thread-count-dependent order, so equal threads give bitwise-equal results
    #: whichever executor runs the candidate.
    threads: int = 0
    #: Optional per-epoch hook (in-process only, never pickled): receives the epoch's figures.
    epoch_callback: Optional[Callable[[Dict[str, float]], None]] = None

    #: Attributes rebuilt where the evaluator runs (device-resident data, the epoch hook):
    #: dropped when the evaluator is pickled for a worker process.
    transient = ("epoch_callback", "_batches")

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        for name in self.transient:
            if name in state:
                state[name] = None
        return state

    def report_epoch(self, row: Dict[str, float]) -> None:
        if self.epoch_callback is not None:
            self.epoch_callback(row)

    @abstractmethod
    def evaluate(self, graph: CellGraph, seed: int) -> Result:
        """Train ``graph`` with ``seed`` and return what was measured."""

    def describe(self) -> Dict[str, Any]:
        """Settings that change results; stored with the search for --resume checks."""
        return {}
    #: The per-epoch figure of ``Result.curve`` that ``curves.png`` draws ("": no plot).
    curve_metric: str = ""
