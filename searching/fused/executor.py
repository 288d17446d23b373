"""An executor that trains a search step's candidates as one fused model (``--fused``).

Both AutoShrink searches hand the executor one step's candidates at a time; each is its
parent minus one edge. :class:`FusedExecutor` trains them together with the fused trainer of
their evaluator -- :mod:`searching.fused.cnn_trainer` for the CNN proxy,
:mod:`searching.fused.rnn_trainer` for the RNN proxy -- and falls back to ``fallback`` (one by
one in this process by default) where it cannot fuse, saying why once per reason.

Determinism and resume: members share no weight and each keeps its own seed, data order and
stops, so a member's result is its separate training's up to floating-point rounding (tested
in float64). A fused search is therefore deterministic on one machine; a search killed mid-step
retrains that step's remaining candidates on resume as a smaller group (results come when the
whole group is done), with the same results up to rounding. In float32 "the same up to
rounding" is not "identical": the proxy trainings are chaotic enough (RNN: lr 20) that rounding
moves a candidate's figure by up to a few per cent, so a fused search is comparable with an
unfused one, not bit-identical to it.
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
