"""Executors run a step's candidates and yield each result as it finishes.

The in-process executor is the default. Every executor turns an exception inside a candidate
into a ``failed`` result carrying the error and its full traceback. A training failure (out of
memory, a diverged loss, a worker that died) is just a failed candidate; any other exception
is a bug, and its result is marked ``fatal`` so that the search stops instead of silently
dropping the candidate (see :func:`api.search.evaluator.is_training_failure`).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import time
import traceback
import weakref
from abc import ABC, abstractmethod
from multiprocessing.connection import wait as wait_ready
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from api.scoped import torch_state, torch_threads
from api.search.evaluator import Evaluator, Result, Task, is_training_failure


def failure_result(exc: BaseException, fatal: Optional[bool] = None, prefix: str = "") -> Result:
    """A failed Result for ``exc``: a one-line ``error``, the whole ``traceback``, and
    ``fatal`` unless ``exc`` is a training failure."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] or None
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return Result(status="failed", error=f"{prefix}{type(exc).__name__}: {first}{where}",
                  traceback="".join(traceback.format_exception(type(exc), exc,
                                                               exc.__traceback__)),
                  fatal=not is_training_failure(exc) if fatal is None else fatal)


def evaluate_safely(evaluator: Evaluator, task: Task) -> Result:
    """Train one candidate with ``evaluator.threads`` CPU threads; an exception becomes a
    failed Result (see :func:`failure_result`). The thread count and ``cudnn.benchmark``
    are restored afterwards, whatever the evaluator set."""
    start = time.perf_counter()
    with torch_state(), torch_threads(evaluator.threads):
        try:
            result = evaluator.evaluate(task.graph, task.seed)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - reported, and classified, not raised
            result = failure_result(exc)
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


def _init_worker(evaluator_bytes: bytes, gpu: Optional[str], threads: int) -> None:
    """Pin this worker to its GPU (``CUDA_VISIBLE_DEVICES`` value, None: leave it) and CPU
    threads before torch starts, then load the evaluator once; it is reused for every
    candidate the worker trains. The worker process is ours: no need to restore anything."""
    global _WORKER_EVALUATOR
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    _WORKER_EVALUATOR = pickle.loads(evaluator_bytes)


def _run_in_worker(task: Task) -> Result:
    assert _WORKER_EVALUATOR is not None, "worker not initialised"
    return evaluate_safely(_WORKER_EVALUATOR, task)


def _worker_main(conn, evaluator_bytes: bytes, gpu: Optional[str],
                 threads: int) -> None:  # pragma: no cover - runs in a worker process
    """A worker's life: set up, then train each task received on ``conn`` and send back its
    Result, until told to stop (None) or the parent goes away. Ctrl-C is the parent's to
    handle (it stops the workers). A worker that cannot set up answers every task with a
    fatal result naming why, so the search stops with that error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    broken: Optional[Result] = None
    try:
        _init_worker(evaluator_bytes, gpu, threads)
    except Exception as exc:  # noqa: BLE001 - reported with the first task
        broken = failure_result(exc, fatal=True, prefix="worker could not start: ")
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(broken if broken is not None else _run_in_worker(task))


def plan_workers(workers: int, gpus: int, cores: int) -> Tuple[List[Optional[int]], int]:
    """GPU slot of each worker (round-robin, several per GPU when workers > GPUs) and the CPU
    threads each gets so that workers x threads = cores. Slots index the GPUs this process
    sees; :func:`worker_devices` maps them to ``CUDA_VISIBLE_DEVICES`` values."""
    slots = [i % gpus if gpus else None for i in range(workers)]
    return slots, max(1, cores // workers)


def worker_devices(slots: Sequence[Optional[int]],
                   inherited: Optional[str] = None) -> List[Optional[str]]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each worker (None: leave the inherited one).

    A slot indexes the GPUs this process sees, so it is mapped through the list this process
    inherited (a scheduler exposing "2,3" puts slot 0 on GPU 2, not 0); entries may be
    indices or UUIDs (``GPU-...``, ``MIG-...``) and are passed on as written. Unset: slot i is
    GPU i. Empty (no GPU visible): the workers see none either."""
    if inherited is None:
        return [None if s is None else str(s) for s in slots]
    visible = []
    for entry in inherited.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):  # CUDA ignores this entry and all after it
            break
        visible.append(entry)
    return [None if s is None or not visible else visible[s % len(visible)] for s in slots]


class _Worker:
    """One worker process, the pipe to it, and the task it is training (None: idle)."""

    def __init__(self, ctx, evaluator_bytes: bytes, gpu: Optional[str], threads: int) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, name="candidate-worker",
                                   args=(child, evaluator_bytes, gpu, threads))
        self.process.start()
        child.close()
        self.task: Optional[Task] = None

    def send(self, task: Task) -> bool:
        try:
            self.conn.send(task)
        except (OSError, ValueError):  # the worker is gone
            return False
        self.task = task
        return True

    def receive(self) -> Optional[Result]:
        """The running task's result, or None when the worker died before sending it."""
        try:
            if self.conn.poll():
                result = self.conn.recv()
                self.task = None
                return result
        except Exception:  # noqa: BLE001 - a torn message: the worker died mid-send
            pass
        return None

    def stop(self, graceful: bool) -> None:
        if graceful and self.process.is_alive():
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                pass
            self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _stop_workers(workers: List[_Worker], graceful: bool = True) -> None:
    while workers:
        workers.pop().stop(graceful)


class ProcessExecutor(Executor):
    """``workers`` local processes, each training one candidate at a time.

    GPUs are assigned round-robin (``CUDA_VISIBLE_DEVICES`` per worker, mapped through the
    list this process inherited); on CPU the cores are split between workers. The executor
    knows which candidate each worker runs: a worker that dies (killed, segfault, out of host
    memory) is replaced and only its own candidate is retried once, then recorded as failed;
    the candidates of the other workers are not disturbed.
    """

    def __init__(self, workers: int, gpus: Optional[int] = None, cores: Optional[int] = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.gpus = _visible_gpus() if gpus is None else gpus
        self.cores = cores or os.cpu_count() or 1
        self._workers: List[_Worker] = []
        # The evaluator the workers hold, by a strong reference: an id() could be reused by
        # another evaluator once this one is collected, and the workers would train with the
        # stale copy.
        self._evaluator: Optional[Evaluator] = None
        self._spawn_args: Optional[Tuple] = None
        self._devices: List[Optional[str]] = []
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers, False)

    def _start(self, evaluator: Evaluator) -> List[_Worker]:
        if self._workers and self._evaluator is evaluator:
            return self._workers
        self.close()
        slots, threads = plan_workers(self.workers, self.gpus, self.cores)
        self._devices = worker_devices(slots, os.environ.get("CUDA_VISIBLE_DEVICES"))
        self._spawn_args = (mp.get_context("spawn"), pickle.dumps(evaluator),
                            evaluator.threads or threads)
        self._workers.extend(self._spawn(i) for i in range(self.workers))
        self._evaluator = evaluator
        return self._workers

    def _spawn(self, index: int) -> _Worker:
        ctx, evaluator_bytes, threads = self._spawn_args
        return _Worker(ctx, evaluator_bytes, self._devices[index], threads)

    def _replace(self, index: int) -> None:
        self._workers[index].stop(graceful=False)
        self._workers[index] = self._spawn(index)

    def run(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[Tuple[Task, Result]]:
        queue = list(tasks)
        if not queue:
            return
        deaths: Dict[str, int] = {}
        workers = self._start(evaluator)
        complete = False
        try:
            while queue or any(w.task is not None for w in workers):
                for i in range(len(workers)):
                    respawned = 0
                    while workers[i].task is None and queue:
                        if workers[i].send(queue[0]):
                            queue.pop(0)
                        elif respawned < 3:  # it died while idle: no candidate's fault
                            respawned += 1
                            self._replace(i)
                        else:
                            raise RuntimeError("candidate worker processes die as they start")
                busy = [(i, w) for i, w in enumerate(workers) if w.task is not None]
                ready = set(wait_ready([w.conn for _, w in busy] +
                                       [w.process.sentinel for _, w in busy]))
                for i, w in busy:
                    if w.conn not in ready and w.process.sentinel not in ready:
                        continue
                    task = w.task
                    result = w.receive()
                    if result is None:  # the worker died training this task: its fault alone
                        w.process.join(1)
                        code = w.process.exitcode
                        self._replace(i)
                        deaths[task.key] = deaths.get(task.key, 0) + 1
                        if deaths[task.key] < 2:
                            queue.insert(0, task)
                            continue
                        result = Result(status="failed", error=(
                            f"worker process died (exit code {code}) training this candidate, "
                            "twice"))
                    yield task, result
            complete = True
        finally:
            if not complete:  # the consumer stopped early or failed: leave nothing running
                self.close(graceful=False)

    def close(self, graceful: bool = True) -> None:
        _stop_workers(self._workers, graceful)
        self._evaluator = None


def _visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no usable CUDA means CPU workers
        return 0


# ---------------------------------------------------------------------- Ray
def _ray_evaluate(evaluator: Evaluator, task: Task, threads: int) -> Result:
    with torch_threads(threads):  # what the task reserved, unless the evaluator says
        return evaluate_safely(evaluator, task)


class RayExecutor(Executor):
    """Ray core tasks, one per candidate, each asking for ``num_cpus`` and ``num_gpus``
    (fractions put several candidates on one GPU). ``address`` joins a cluster (``auto``).

    ``num_cpus=None`` (what ``--executor ray`` uses) reserves as many CPUs as the candidate
    trains with threads (``evaluator.threads``, at least 1), so a task never runs more threads
    than the cores Ray gave it. Ray retries a task whose worker died once (only that task)."""

    def __init__(self, address: Optional[str] = None, num_cpus: Optional[float] = None,
                 num_gpus: float = 0, init_kwargs: Optional[dict] = None) -> None:
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
        self._remote = ray.remote(num_gpus=num_gpus, max_retries=1)(_ray_evaluate)

    def cpus_and_threads(self, evaluator: Evaluator) -> Tuple[float, int]:
        """CPUs each task reserves and the threads it trains with."""
        cpus = self.num_cpus if self.num_cpus else max(1, evaluator.threads)
        return cpus, evaluator.threads or max(1, int(cpus))

    def run(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[Tuple[Task, Result]]:
        ray = self.ray
        ev_ref = ray.put(evaluator)
        cpus, threads = self.cpus_and_threads(evaluator)
        remote = self._remote.options(num_cpus=cpus)
        refs = {remote.remote(ev_ref, t, threads): t for t in tasks}
        try:
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    task = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # our code failed outside
                        result = failure_result(exc, fatal=True, prefix="ray task: ")
                    except Exception as exc:  # noqa: BLE001 - a lost worker fails one candidate
                        result = Result(status="failed", error=f"ray task failed: {exc}")
                    yield task, result
        finally:  # the consumer stopped early (a fatal result, Ctrl-C): cancel the rest
            for ref in refs:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass

    def close(self) -> None:
        pass


def make_executor(kind: str = "local", workers: int = 1, ray_address: Optional[str] = None,
                  gpus_per_candidate: float = 0.0) -> Executor:
    """The executor the CLI flags ask for (``--executor``, ``--workers``, ``--ray_address``)."""
    from api.errors import UserError

    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if kind == "ray":
        return RayExecutor(ray_address, num_cpus=None, num_gpus=gpus_per_candidate)
    if kind != "local":
        raise UserError(f"unknown --executor {kind!r} (choose local or ray)")
    return InProcessExecutor() if workers == 1 else ProcessExecutor(workers)


def resolve_threads(requested: int, workers: int, saved: Optional[int] = None,
                    executor: str = "local") -> int:
    """CPU threads per candidate: the flag, else the value a resumed search used, else
    cores // workers locally and 1 under Ray (each Ray task reserves as many CPUs as its
    threads, and this machine's cores say nothing about the cluster's). Fixed for the whole
    search so that results do not depend on the executor (see ``Evaluator.threads``)."""
    if requested > 0:
        return requested
    if saved:
        return int(saved)
    if executor == "ray":
        return 1
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
                   help="CPU threads per candidate (0: cores / workers; 1 under Ray, whose "
                        "tasks reserve as many CPUs as threads; kept on --resume); results are "
                        "bitwise identical across executors at equal --threads")
