"""Executors: worker processes and Ray give exactly the in-process results at equal threads;
GPU pinning, dead workers, bugs versus training failures, and scoped torch settings."""
import os
import signal
import time

import pytest
import torch

from api.runs.atomic_io import read_jsonl
from api.errors import UserError, run_cli
from api.spaces.dag.graph import CellGraph
from api.scoped import torch_threads
from api.search.evaluator import Evaluator, Result, Task, TrainingFailure
from api.search.executors import (InProcessExecutor, ProcessExecutor, evaluate_safely,
                                  make_executor, plan_workers, resolve_threads, worker_devices)
from searching.cnn.autoshrink_cnn import build_parser, search_cnn
from searching.cell_search import CandidateBug
from tests.conftest import REPO
from tests.searching.autoshrink.test_shrink import FakeEvaluator, journal
from tests.searching.autoshrink.test_shrink import run as run_shrink

TINY = ["--nodes", "4", "--max_steps", "2", "--epochs", "1", "--proxy_train", "100",
        "--proxy_val", "50", "--depth", "2", "--scale", "0.5", "1", "--pool", "1", "2",
        "--replicate", "1", "1", "--quiet", "--no_plots", "--threads", "1"]


def scores(root):
    return [(r["key"], r["score"], r["status"]) for r in read_jsonl(root / "candidates.jsonl")]


def test_plan_workers_round_robin_and_thread_split():
    assert plan_workers(4, 2, 16) == ([0, 1, 0, 1], 4)
    assert plan_workers(2, 0, 2) == ([None, None], 1)
    assert resolve_threads(3, 2) == 3 and resolve_threads(0, 2, saved=5) == 5
    with pytest.raises(UserError):
        make_executor("local", workers=0)


@pytest.mark.slow
def test_process_executor_matches_in_process_on_fake_evaluator():
    graphs = [CellGraph.complete(4, ["input", "Conv1x1", "Conv1x1", "Conv1x1"]).remove_edge(*e)
              for e in [(0, 1), (0, 2), (1, 3), (2, 3)]]
    tasks = [Task(f"t{i}", g, 100 + i) for i, g in enumerate(graphs)]
    ref = {t.key: r.metrics for t, r in InProcessExecutor().run(FakeEvaluator(), tasks)}
    with ProcessExecutor(2) as ex:
        got = {t.key: r.metrics for t, r in ex.run(FakeEvaluator(), tasks)}
    assert got == ref


@pytest.mark.slow
def test_workers_give_in_process_results(tmp_path, cifar_root):
    base = ["--data", str(cifar_root), *TINY]
    search_cnn(build_parser().parse_args(["--model_root", str(tmp_path / "one"), *base]))
    search_cnn(build_parser().parse_args(["--model_root", str(tmp_path / "two"), *base,
                                          "--workers", "2"]))
    assert scores(tmp_path / "two") == scores(tmp_path / "one")


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module's Ray tests (starting one costs 10-30 s)."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install -e '.[ray]'")
    # Ray workers import test modules (tests.<package>.<module>) and the project from the root
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_executor_gives_in_process_results(tmp_path, cifar_root, ray_session):
    from api.search.executors import RayExecutor

    base = ["--data", str(cifar_root), *TINY]
    search_cnn(build_parser().parse_args(["--model_root", str(tmp_path / "one"), *base]))
    assert isinstance(make_executor("ray"), RayExecutor)
    search_cnn(build_parser().parse_args(["--model_root", str(tmp_path / "ray"), *base,
                                          "--executor", "ray"]))
    assert scores(tmp_path / "ray") == scores(tmp_path / "one")


# ---------------------------------------------------------------------- robustness
GRAPH = CellGraph.complete(4, ["input", "Conv1x1", "Conv1x1", "Conv1x1"])


class Scripted(Evaluator):
    """Does what its seed says: 13 kills its own process, 7 raises TypeError (a bug), 5
    diverges; others sleep a little (so that workers overlap) and score seed / 1000 + bonus.
    Every call is logged (one line per call) to ``log`` when given."""

    def __init__(self, log=None, sleep=0.3, bonus=0.0):
        self.log, self.sleep, self.bonus = log, sleep, bonus

    def evaluate(self, graph, seed):
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{seed}\n")
        if seed == 13:
            os.kill(os.getpid(), signal.SIGKILL)
        if seed == 7:
            return len(None)  # TypeError: a bug
        if seed == 5:
            raise TrainingFailure("validation loss is nan")
        time.sleep(self.sleep)
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return Result(metrics={"accuracy": seed / 1000 + self.bonus, "gpu": float(gpu) if gpu else -1.0})


@pytest.mark.slow
def test_worker_gpus_are_mapped_through_the_inherited_visible_devices(monkeypatch):
    assert worker_devices([0, 1, 0, 1], "2,3") == ["2", "3", "2", "3"]
    assert worker_devices([0, 1], None) == ["0", "1"]  # unset: slot i is GPU i
    assert worker_devices([None, None], "2,3") == [None, None]  # CPU workers
    assert worker_devices([0, 1], "GPU-aa, MIG-bb") == ["GPU-aa", "MIG-bb"]
    assert worker_devices([0, 1], "") == [None, None]  # none visible: none for the workers
    assert worker_devices([0, 1], "3,-1,0") == ["3", "3"]  # CUDA stops at an invalid entry
    # the real workers, under a scheduler that exposed GPUs 2 and 3 (no GPU needed here)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    tasks = [Task(f"t{i}", GRAPH, 100 + i) for i in range(2)]
    with ProcessExecutor(2, gpus=2, cores=2) as ex:
        got = {t.key: r.metrics["gpu"] for t, r in ex.run(Scripted(sleep=0.5), tasks)}
    assert got == {"t0": 2.0, "t1": 3.0}


@pytest.mark.slow
def test_a_dead_worker_fails_only_its_own_candidate(tmp_path):
    """A candidate that kills its worker is retried once, then failed; the candidates other
    workers were training meanwhile are neither charged nor retrained. A bug's result comes
    back from the worker marked fatal with its whole traceback."""
    log = tmp_path / "calls.log"
    seeds = [101, 13, 102, 103, 7, 104]
    tasks = [Task(f"s{s}", GRAPH, s) for s in seeds]
    with ProcessExecutor(2, gpus=0, cores=2) as ex:
        results = {t.key: r for t, r in ex.run(Scripted(str(log)), tasks)}
        assert set(results) == {t.key for t in tasks}
        killed = results.pop("s13")
        assert not killed.ok and "worker process died" in killed.error and not killed.fatal
        bug = results.pop("s7")
        assert bug.fatal and "TypeError" in bug.error and "len(None)" in bug.traceback
        assert all(r.ok for r in results.values())
        assert {k: r.metrics["accuracy"] for k, r in results.items()} == {
            f"s{s}": s / 1000 for s in seeds if s not in (13, 7)}
        calls = log.read_text().split()
        assert sorted(calls) == sorted(["13", "13"] + [str(s) for s in seeds if s != 13])
        # the replaced workers go on serving the next run
        again = [r for _, r in ex.run(Scripted(), [Task("x", GRAPH, 200)])]
        assert [r.metrics["accuracy"] for r in again] == [0.2]


@pytest.mark.slow
def test_the_worker_pool_follows_the_evaluator_object():
    """Workers hold a copy of the evaluator: a new evaluator, even one that reuses a freed
    one's id(), gets new workers."""

    tasks = [Task("t", GRAPH, 3)]
    with ProcessExecutor(1, gpus=0, cores=1) as ex:
        got = []
        for bonus in (0.0, 1.0):
            ev = Scripted(sleep=0.0, bonus=bonus)
            got.append([r.metrics["accuracy"] for _, r in ex.run(ev, tasks)])
            assert ex._evaluator is ev
            del ev
    assert got == [[0.003], [1.003]]


class Bug(Evaluator):
    def evaluate(self, graph, seed):
        raise KeyError("no such op")


class Changes(Evaluator):
    """Leaves process-global torch settings changed, as careless training code does."""

    threads = 1

    def evaluate(self, graph, seed):
        seen = torch.get_num_threads()
        torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
        torch.set_num_threads(3)
        return Result(metrics={"accuracy": 0.5, "threads": seen})


def test_evaluate_safely_classifies_and_keeps_the_traceback():
    from searching.cnn.proxy import Diverged as CNNDiverged
    from searching.rnn.proxy import Diverged as RNNDiverged

    bug = evaluate_safely(Bug(), Task("t", GRAPH, 0))
    assert not bug.ok and bug.fatal and bug.error.startswith("KeyError: 'no such op' at ")
    assert "Traceback (most recent call last)" in bug.traceback and "raise KeyError" in bug.traceback

    class Raises(Evaluator):
        def __init__(self, exc):
            self.exc = exc

        def evaluate(self, graph, seed):
            raise self.exc

    failures = [CNNDiverged("nan"), RNNDiverged("diverged"), FloatingPointError("nan"),
                RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), MemoryError(),
                torch.OutOfMemoryError("CUDA out of memory")]
    bugs = [TypeError("x"), AttributeError("x"), NameError("x"), ImportError("x"),
            AssertionError("x"), IndexError("x"), ValueError("x"), ZeroDivisionError(),
            RuntimeError("CUDA error: an illegal memory access was encountered")]
    for exc in failures + bugs:
        r = evaluate_safely(Raises(exc), Task("t", GRAPH, 0))
        assert not r.ok and r.traceback and r.fatal == (exc in bugs), exc


def test_evaluate_safely_restores_threads_and_cudnn_benchmark():
    before = (torch.get_num_threads(), torch.backends.cudnn.benchmark)
    with torch_threads(2):
        r = evaluate_safely(Changes(), Task("t", GRAPH, 0))
        assert r.metrics["threads"] == 1  # ran with evaluator.threads
        assert (torch.get_num_threads(), torch.backends.cudnn.benchmark) == (2, before[1])
    assert (torch.get_num_threads(), torch.backends.cudnn.benchmark) == before


def test_cnn_proxy_sets_cudnn_benchmark_for_its_candidate_only():
    from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig

    ev = CNNProxyEvaluator(None, None, CNNProxyTrainConfig(cudnn_benchmark=True))
    seen = []
    ev._evaluate = lambda graph, seed: seen.append(torch.backends.cudnn.benchmark) or Result()
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        ev.evaluate(GRAPH, 0)
        assert seen == [True] and torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before


def test_rnn_kernel_restores_threads_and_leaves_no_pool_work_running():
    from api.spaces.autoshrink_rnn.recurrence import _one_thread, _run_parts

    finished = []

    def part(b0, b1):
        if b0 == 0:
            raise ValueError("first range failed")
        time.sleep(0.3)
        finished.append(b0)

    with torch_threads(2):
        with pytest.raises(ValueError):
            with _one_thread(torch.zeros(1)):
                assert torch.get_num_threads() == 1
                _run_parts([(0, 1), (1, 2)], part)
        assert finished == [1]  # the other range was done before the exception surfaced
        assert torch.get_num_threads() == 2


class BugOnEdges(Evaluator):
    """The shrink loop's fake evaluator, raising ``exc`` for the graphs with ``edges`` edges
    that lack edge 0->3 (one candidate of step 2 at seed 0)."""

    metric = "accuracy"

    def __init__(self, exc=None, edges=8):
        self.fake, self.exc, self.edges = FakeEvaluator(), exc, edges

    def evaluate(self, graph, seed):
        if self.exc is not None and graph.num_edges == self.edges and not graph.mask[0, 3]:
            raise self.exc
        return self.fake.evaluate(graph, seed)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_bug_stops_the_search_and_resume_finishes_it(tmp_path, capsys, workers):
    root = tmp_path / "bug"
    executor = InProcessExecutor() if workers == 1 else ProcessExecutor(workers, gpus=0, cores=2)
    try:
        with pytest.raises(CandidateBug) as err:
            run_shrink(root, BugOnEdges(TypeError("unsupported operand")), k=3, keep=0.5,
                       executor=executor)
    finally:
        executor.close()
    message = str(err.value)
    assert "\n" not in message and str(root / "errors.log") in message
    assert "TypeError: unsupported operand" in message and "--resume" in message
    assert (root / "state.json").is_file()
    logged = (root / "errors.log").read_text()
    assert "a bug: the search stopped" in logged and "Traceback" in logged
    failed = [r for r in read_jsonl(root / "candidates.jsonl") if r["status"] == "failed"]
    assert failed and failed[0]["fatal"] and "TypeError" in failed[0]["traceback"]
    # the CLIs print it as one line and exit 2
    with pytest.raises(SystemExit) as code:
        run_cli(lambda argv: (_ for _ in ()).throw(err.value))
    assert code.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    # fixed: --resume finishes with exactly the result of a search that never had the bug
    search, best = run_shrink(root, BugOnEdges(), k=3, keep=0.5, resume=True)
    _, ref = run_shrink(tmp_path / "ref", FakeEvaluator(), k=3, keep=0.5)
    assert journal(root) == journal(tmp_path / "ref") and best == ref


def test_a_training_failure_is_recorded_and_the_search_goes_on(tmp_path):
    from searching.cnn.proxy import Diverged

    root = tmp_path / "div"
    search, best = run_shrink(root, BugOnEdges(Diverged("training loss is nan")), k=3,
                              keep=0.5)
    failed = [r for r in read_jsonl(root / "candidates.jsonl") if r["status"] == "failed"]
    assert failed and all("Diverged" in r["error"] and "fatal" not in r for r in failed)
    assert all("Traceback" in r["traceback"] for r in failed)
    logged = (root / "errors.log").read_text()
    assert logged.count("a training failure: the search goes on") == len(failed)
    assert search.state["done"]


def test_ray_threads_default_to_the_task_reservation(cifar_root, tmp_path):
    assert resolve_threads(0, 4, executor="ray") == 1  # not this machine's cores / workers
    assert resolve_threads(3, 1, executor="ray") == 3 and resolve_threads(0, 1, 5, "ray") == 5
    from searching.cnn.autoshrink_cnn import build_components

    for extra, threads in (([], 1), (["--threads", "2"], 2)):
        args = build_parser().parse_args(["--model_root", str(tmp_path), "--data",
                                          str(cifar_root), *TINY[:-2], "--executor", "ray",
                                          *extra])
        built = build_components(args)
        evaluator, settings = built.evaluator, built.settings
        assert evaluator.threads == threads and settings["threads"] == threads


class Reservation(Evaluator):
    def evaluate(self, graph, seed):
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)
        return Result(metrics={"cpus": cpus, "threads": torch.get_num_threads()})


@pytest.mark.slow
def test_ray_tasks_reserve_as_many_cpus_as_they_use_threads(ray_session):
    ex = make_executor("ray")
    for threads, want in ((0, (1.0, 1)), (2, (2.0, 2))):
        ev = Reservation()
        ev.threads = threads
        assert ex.cpus_and_threads(ev) == (want[0], want[1])
        (_, r), = list(ex.run(ev, [Task("t", GRAPH, 0)]))
        assert r.ok, r.traceback
        assert (r.metrics["cpus"], r.metrics["threads"]) == want
