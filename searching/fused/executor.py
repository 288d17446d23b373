"""An executor that trains a search step's candidates as one fused model (``--fused``).

:class:`FusedExecutor` trains one AutoShrink step's candidates together with their evaluator's
fused trainer (:mod:`searching.fused.cnn_trainer`, :mod:`searching.fused.rnn_trainer`) and
falls back to ``fallback`` (separate training in this process by default) where it cannot fuse,
saying why once per reason. Each member's result is its separate training's up to
floating-point rounding, so a fused search is comparable with an unfused one, not
bit-identical; resume after a mid-step kill retrains the step's remaining candidates.
Design and measurements: bench/README.md (fused candidates, CUDA graphs).
"""
from __future__ import annotations

import sys
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from api.spaces.dag.graph import CellGraph
from api.scoped import torch_state, torch_threads
from api.search.evaluator import Result, Task
from api.search.executors import Executor, InProcessExecutor, failure_result

Trainer = Callable[..., List[Result]]


def supergraph(graphs: Sequence[CellGraph]) -> CellGraph:
    """The union of the members' edges: a common parent of a step's candidates (the step's
    parent itself unless every candidate lost some edge of it), built from the tasks alone."""
    mask = np.zeros_like(graphs[0].mask)
    for g in graphs:
        mask |= g.mask
    return graphs[0].with_mask(mask).optimize()


def _trainers():
    """(evaluator class, why-not function, fused trainer) of each proxy with a fused trainer."""
    from searching.fused import cnn_trainer as cnn
    from searching.fused import rnn_trainer as rnn
    return [(cnn.CNNProxyEvaluator, cnn.why_not_fused, cnn.train_fused),
            (rnn.RNNProxyEvaluator, rnn.why_not_fused, rnn.train_fused)]


def fused_trainer(evaluator, graphs: Sequence[CellGraph]) -> Tuple[Optional[Trainer], str]:
    """(the fused trainer for these candidates, '') or (None, why they cannot be fused)."""
    for cls, why_not, train in _trainers():
        if isinstance(evaluator, cls):
            why = why_not(evaluator, graphs)
            return (None, why) if why else (train, "")
    return None, f"no fused trainer for {type(evaluator).__name__}"


class FusedExecutor(Executor):
    """Trains the tasks of one call (a search step's candidates) as one fused model."""

    def __init__(self, fallback: Optional[Executor] = None, cuda_graphs: bool = False) -> None:
        self.fallback = fallback or InProcessExecutor()
        self.cuda_graphs = cuda_graphs  # replay each fused step as a CUDA graph where possible
        self._said = set()
        self.groups: List[int] = []  # the sizes of the groups trained fused, in order

    def _why_not(self, evaluator, tasks: Sequence[Task]) -> Optional[str]:
        if len(tasks) < 2:
            return "fewer than two candidates"
        return fused_trainer(evaluator, [t.graph for t in tasks])[1] or None

    def run(self, evaluator, tasks: Sequence[Task]) -> Iterator[Tuple[Task, Result]]:
        graphs = [t.graph for t in tasks]
        train, why = fused_trainer(evaluator, graphs) if len(tasks) > 1 else (None, "")
        if train is None:
            if why and why not in self._said:
                self._said.add(why)
                print(f"fused: training separately ({why})", file=sys.stderr)
            yield from self.fallback.run(evaluator, tasks)
            return
        results = None
        with torch_state(), torch_threads(evaluator.threads):
            try:
                results = train(evaluator, supergraph(graphs), graphs, [t.seed for t in tasks],
                                cuda_graphs=self.cuda_graphs)
            except (KeyboardInterrupt, SystemExit):
                raise
            except torch.cuda.OutOfMemoryError as exc:  # k members in one model: they may not
                oom = (str(exc).splitlines() or [""])[0]  # fit where one at a time does
            except BaseException as exc:  # noqa: BLE001 - a bug: fatal, as evaluate_safely
                results = [failure_result(exc) for _ in tasks]
        if results is None:
            torch.cuda.empty_cache()
            why = f"{len(tasks)} fused candidates ran out of GPU memory: {oom}"
            print(f"fused: training this step's candidates separately ({why})", file=sys.stderr)
            yield from self.fallback.run(evaluator, tasks)
            return
        self.groups.append(len(tasks))
        yield from zip(tasks, results)

    def close(self) -> None:
        self.fallback.close()


__all__ = ["FusedExecutor", "fused_trainer", "supergraph"]
