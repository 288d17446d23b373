"""What an evaluator is: train one candidate cell from scratch and report what it measured.

>>> class Constant(Evaluator):
...     metric = "accuracy"
...     def evaluate(self, graph, seed):
...         return Result(status="ok", metrics={"accuracy": 0.5}, macs=1e6, params=10)
"""
from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

from api.spaces.dag.graph import CellGraph


class TrainingFailure(RuntimeError):
    """A candidate that could not be trained to a score: its loss diverged (NaN/infinite or
    past a threshold). Evaluators raise a subclass; the search records the candidate as
    failed and goes on. Any exception that is not a training failure (see
    :func:`is_training_failure`) is treated as a bug and stops the search."""


#: Messages of ``RuntimeError``s that mean the device ran out of memory.
_OOM_MESSAGES = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED")


def is_training_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a candidate failing to train rather than a bug.

    An allow-list: :class:`TrainingFailure` (divergence), ``FloatingPointError`` (NaN/inf),
    host ``MemoryError`` and out-of-memory on the device (``torch.OutOfMemoryError``, or a
    ``RuntimeError`` whose message says "out of memory"). Everything else (``TypeError``,
    ``KeyError``, ``ValueError``, a CUDA illegal access, ...) signals a bug."""
    if isinstance(exc, (TrainingFailure, FloatingPointError, MemoryError)):
        return True
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OOM_MESSAGES)


@dataclass
class Result:
    """One candidate's outcome. ``status`` is ``ok`` or ``failed`` (with ``error``, the full
    ``traceback`` when an exception caused it, and ``fatal`` when that exception signals a
    bug rather than a training failure: the search then stops instead of going on)."""

    status: str = "ok"
    metrics: Dict[str, float] = field(default_factory=dict)
    macs: float = 0.0
    params: int = 0
    seconds: float = 0.0
    epochs: int = 0
    error: Optional[str] = None
    traceback: Optional[str] = None
    fatal: bool = False
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
    #: The per-epoch figure of ``Result.curve`` that ``curves.png`` draws ("": no plot).
    curve_metric: str = ""
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
