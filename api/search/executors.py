"""Executors run a step's candidates and yield each result as it finishes.

The in-process executor is the default. Every executor turns an exception inside a candidate
(out of memory, a bug in an op, a diverged loss) into a ``failed`` result carrying the error,
so one bad candidate never ends a search.
"""
from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from typing import Iterator, Sequence, Tuple

from api.search.evaluator import Evaluator, Result, Task


def evaluate_safely(evaluator: Evaluator, task: Task) -> Result:
    start = time.perf_counter()
    try:
        result = evaluator.evaluate(task.graph, task.seed)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a candidate must never end the search
        last = traceback.extract_tb(exc.__traceback__)[-1:] or None
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        result = Result(status="failed", error=f"{type(exc).__name__}: {exc}{where}")
    if not result.seconds:
        result.seconds = time.perf_counter() - start
    return result


class Executor(ABC):
    """Runs tasks with an evaluator; yields ``(task, result)`` in completion order."""

    @abstractmethod
    def run(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[Tuple[Task, Result]]:
        ...

    def close(self) -> None:
        """Release workers; the in-process executor holds none."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcessExecutor(Executor):
    """Trains candidates one after another in this process."""

    def run(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[Tuple[Task, Result]]:
        for task in tasks:
            yield task, evaluate_safely(evaluator, task)
