"""Executors run a step's candidates and yield each result as it finishes.

The in-process executor is the default. Every executor turns an exception inside a candidate
(out of memory, a bug in an op, a diverged loss) into a ``failed`` result carrying the error,
so one bad candidate never ends a search.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import time
import traceback
from abc import ABC, abstractmethod
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator, List, Optional, Sequence, Tuple

from api.search.evaluator import Evaluator, Result, Task


def evaluate_safely(evaluator: Evaluator, task: Task) -> Result:
    start = time.perf_counter()
    if evaluator.threads > 0:
        import torch

        torch.set_num_threads(evaluator.threads)
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


# ---------------------------------------------------------------------- worker processes
_WORKER_EVALUATOR: Optional[Evaluator] = None


def _init_worker(evaluator_bytes: bytes, slots, threads: int) -> None:  # pragma: no cover
    """Pin this worker to its GPU (or none) and CPU threads before torch starts, then load
    the evaluator once; it is reused for every candidate the worker trains."""
    global _WORKER_EVALUATOR
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    _WORKER_EVALUATOR = pickle.loads(evaluator_bytes)


def _run_in_worker(task: Task) -> Result:
    assert _WORKER_EVALUATOR is not None, "worker not initialised"
    return evaluate_safely(_WORKER_EVALUATOR, task)


def plan_workers(workers: int, gpus: int, cores: int) -> Tuple[List[Optional[int]], int]:
    """GPU slot of each worker (round-robin, several per GPU when workers > GPUs) and the CPU
    threads each gets so that workers x threads = cores."""
    slots = [i % gpus if gpus else None for i in range(workers)]
    return slots, max(1, cores // workers)


class ProcessExecutor(Executor):
    """``workers`` local processes, each training one candidate at a time.

    GPUs are assigned round-robin (``CUDA_VISIBLE_DEVICES`` per worker); on CPU the cores are
    split between workers. A worker that dies (killed, segfault) is replaced and its candidate
    retried once, then recorded as failed.
    """

    def __init__(self, workers: int, gpus: Optional[int] = None, cores: Optional[int] = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.gpus = _visible_gpus() if gpus is None else gpus
        self.cores = cores or os.cpu_count() or 1
        self._pool = None
        self._evaluator_id: Optional[int] = None

    def _ensure_pool(self, evaluator: Evaluator):
        if self._pool is not None and self._evaluator_id == id(evaluator):
            return self._pool
        self.close()
        ctx = mp.get_context("spawn")
        slots_plan, threads = plan_workers(self.workers, self.gpus, self.cores)
        threads = evaluator.threads or threads
        slots = ctx.Queue()
        for s in slots_plan:
            slots.put(s)
        self._pool = futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
            initargs=(pickle.dumps(evaluator), slots, threads))
        self._evaluator_id = id(evaluator)
        return self._pool

    def run(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[Tuple[Task, Result]]:
        pending = list(tasks)
        attempts = {t.key: 0 for t in tasks}
        while pending:
            pool = self._ensure_pool(evaluator)
            running = {pool.submit(_run_in_worker, t): t for t in pending}
            pending = []
            broken = False
            for fut in futures.as_completed(running):
                task = running[fut]
                try:
                    yield task, fut.result()
                except BrokenProcessPool as exc:
                    broken = True
                    attempts[task.key] += 1
                    if attempts[task.key] >= 2:
                        yield task, Result(status="failed", error=f"worker process died: {exc}")
                    else:
                        pending.append(task)
            if broken:
                self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no usable CUDA means CPU workers
        return 0


# ---------------------------------------------------------------------- Ray
def _ray_evaluate(evaluator: Evaluator, task: Task, threads: int) -> Result:
    import torch

    torch.set_num_threads(evaluator.threads or threads)
    return evaluate_safely(evaluator, task)


class RayExecutor(Executor):
    """Ray core tasks, one per candidate, each asking for ``num_cpus`` and ``num_gpus``
    (fractions put several candidates on one GPU). ``address`` joins a cluster (``auto``)."""

    def __init__(self, address: Optional[str] = None, num_cpus: float = 1, num_gpus: float = 0,
                 init_kwargs: Optional[dict] = None) -> None:
        try:
            import ray
        except ImportError:
            from api.errors import UserError

            raise UserError("--executor ray needs Ray: pip install -e \".[ray]\"") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     **(init_kwargs or {}))
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self._remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=1)(
            _ray_evaluate)

    def run(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[Tuple[Task, Result]]:
        ray = self.ray
        ev_ref = ray.put(evaluator)
        threads = max(1, int(self.num_cpus))
        refs = {self._remote.remote(ev_ref, t, threads): t for t in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                task = refs.pop(ref)
                try:
                    yield task, ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a lost worker fails one candidate
                    yield task, Result(status="failed", error=f"ray task failed: {exc}")

    def close(self) -> None:
        pass


def make_executor(kind: str = "local", workers: int = 1, ray_address: Optional[str] = None,
                  gpus_per_candidate: float = 0.0) -> Executor:
    """The executor the CLI flags ask for (``--executor``, ``--workers``, ``--ray_address``)."""
    from api.errors import UserError

    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if kind == "ray":
        return RayExecutor(ray_address, num_cpus=1, num_gpus=gpus_per_candidate)
    if kind != "local":
        raise UserError(f"unknown --executor {kind!r} (choose local or ray)")
    return InProcessExecutor() if workers == 1 else ProcessExecutor(workers)


def resolve_threads(requested: int, workers: int, saved: Optional[int] = None) -> int:
    """CPU threads per candidate: the flag, else the value a resumed search used, else
    cores // workers. Fixed for the whole search so that results do not depend on the
    executor (see ``Evaluator.threads``)."""
    if requested > 0:
        return requested
    if saved:
        return int(saved)
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def add_executor_flags(parser) -> None:
    g = parser.add_argument_group("execution")
    g.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local: this machine; ray: Ray tasks on a cluster")
    g.add_argument("--workers", type=int, default=1,
                   help="local worker processes training candidates in parallel (1: in-process)")
    g.add_argument("--ray_address", default=None, help="Ray cluster address (e.g. auto)")
    g.add_argument("--gpus_per_candidate", type=float, default=0.0,
                   help="Ray: GPUs per candidate (0.5 puts two candidates on a GPU)")
    g.add_argument("--threads", type=int, default=0,
                   help="CPU threads per candidate (0: cores / workers, kept on --resume); "
                        "results are bitwise identical across executors at equal --threads")
