"""Executors: worker processes and Ray give exactly the in-process results at equal threads."""
import pytest

from api.atomic_io import read_jsonl
from api.graph import CellGraph
from api.search.evaluator import Task
from api.search.executors import (InProcessExecutor, ProcessExecutor, make_executor,
                                  plan_workers, resolve_threads)
from api.errors import UserError
from searching.cnn.autoshrink_cnn import build_parser, search_cnn
from test_shrink import FakeEvaluator

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


def test_process_executor_matches_in_process_on_fake_evaluator():
    graphs = [CellGraph.complete(4, ["input", "Conv1x1", "Conv1x1", "Conv1x1"]).remove_edge(*e)
              for e in [(0, 1), (0, 2), (1, 3), (2, 3)]]
    tasks = [Task(f"t{i}", g, 100 + i) for i, g in enumerate(graphs)]
    ref = {t.key: r.metrics for t, r in InProcessExecutor().run(FakeEvaluator(), tasks)}
    with ProcessExecutor(2) as ex:
        got = {t.key: r.metrics for t, r in ex.run(FakeEvaluator(), tasks)}
    assert got == ref


def test_workers_give_in_process_results(tmp_path, cifar_root):
    base = ["--data", str(cifar_root), *TINY]
    search_cnn(build_parser().parse_args(["--model_root", str(tmp_path / "one"), *base]))
    search_cnn(build_parser().parse_args(["--model_root", str(tmp_path / "two"), *base,
                                          "--workers", "2"]))
    assert scores(tmp_path / "two") == scores(tmp_path / "one")


def test_ray_executor_gives_in_process_results(tmp_path, cifar_root):
    ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install -e '.[ray]'")
    from api.search.executors import RayExecutor

    base = ["--data", str(cifar_root), *TINY]
    search_cnn(build_parser().parse_args(["--model_root", str(tmp_path / "one"), *base]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert isinstance(make_executor("ray"), RayExecutor)
        search_cnn(build_parser().parse_args(["--model_root", str(tmp_path / "ray"), *base,
                                              "--executor", "ray"]))
    finally:
        ray.shutdown()
    assert scores(tmp_path / "ray") == scores(tmp_path / "one")
