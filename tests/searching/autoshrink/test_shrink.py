"""The shared shrink loop, driven by fast fake evaluators."""
import json
import math

import pytest

from api.runs.atomic_io import read_jsonl
from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.search.evaluator import Evaluator, Result
from api.search.objectives import CNNObjective, RNNObjective
from searching.shrink import SearchStalled, ShrinkConfig, ShrinkSearch

OPS = ["input", "SepConv3x3", "Conv1x1", "SepConv3x3", "Conv1x1"]


class FakeEvaluator(Evaluator):
    """Accuracy is a deterministic function of the graph and seed; no training."""

    metric = "accuracy"

    def __init__(self, fail_edges=(), crash_at=None):
        self.calls = 0
        self.fail_edges = set(fail_edges)
        self.crash_at = crash_at

    def evaluate(self, graph, seed):
        self.calls += 1
        if self.crash_at is not None and self.calls == self.crash_at:
            raise SystemExit("simulated kill")
        if self.fail_edges and graph.num_edges in self.fail_edges:
            raise RuntimeError("CUDA out of memory (simulated)")
        acc = 0.3 + 0.02 * graph.num_edges + (seed % 1000) / 1e5
        return Result(metrics={"accuracy": acc}, macs=1e6 * (1 + graph.num_edges), params=10)


def journal(root):
    """candidates.jsonl without wall-clock seconds, which legitimately vary between runs."""
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in read_jsonl(root / "candidates.jsonl")]


def initial(rng):
    return CellGraph.complete(5, OPS)


def run(root, evaluator=None, k=3, keep=0.0, seed=0, resume=False, **kw):
    search = ShrinkSearch(str(root), evaluator or FakeEvaluator(), CNNObjective(),
                          ShrinkConfig(k=k, keep_fraction=keep, seed=seed), plots=False,
                          progress=False, **kw)
    if resume:
        search.resume()
    else:
        search.start(initial)
    return search, search.run()


def test_k_candidates_per_step_until_threshold(tmp_path):
    search, best = run(tmp_path / "a", k=3, keep=0.25)
    recs = read_jsonl(tmp_path / "a" / "candidates.jsonl")
    steps = search.state["history"]
    e0 = 10
    assert search.graph.num_edges <= round(e0 * 0.25)
    edges_before = [e0] + [h["edges"] for h in steps[:-1]]
    for h, before in zip(steps, edges_before):
        assert sum(r["step"] == h["step"] for r in recs) == min(3, before)
    for r in recs:
        for field in ("step", "edge", "score", "accuracy", "macs", "params", "seconds", "status"):
            assert field in r
    assert best.score == max(h["best_score"] for h in steps)
    for name in ("best_perf.log", "perf.log", "mean_acc.log", "best_acc.log", "mean_latency.log"):
        lines = (tmp_path / "a" / name).read_text().splitlines()
        assert len(lines) == len(steps) and lines[0].split("\t")[0] == str(steps[0]["edges"])


def test_same_seed_same_search(tmp_path):
    s1, b1 = run(tmp_path / "a", seed=5)
    s2, b2 = run(tmp_path / "b", seed=5)
    s3, _ = run(tmp_path / "c", seed=6)
    assert b1 == b2 and b1.score == b2.score
    assert journal(tmp_path / "a") == journal(tmp_path / "b")
    assert [r["edge"] for r in s1.state["records"]] != [r["edge"] for r in s3.state["records"]]


@pytest.mark.parametrize("crash_at", [1, 4, 9])
def test_resume_after_crash_matches_uninterrupted(tmp_path, crash_at):
    ref, ref_best = run(tmp_path / "ref")
    with pytest.raises(SystemExit):
        run(tmp_path / "crash", FakeEvaluator(crash_at=crash_at))
    resumed, best = run(tmp_path / "crash", resume=True)
    assert best == ref_best and best.score == ref_best.score
    assert journal(tmp_path / "crash") == journal(tmp_path / "ref")
    assert (tmp_path / "crash" / "best_perf.log").read_text() == \
        (tmp_path / "ref" / "best_perf.log").read_text()


def test_failed_candidates_recorded_and_never_chosen(tmp_path):
    # candidates with 8 edges fail (simulated OOM): they are logged and the search goes on
    search, best = run(tmp_path / "a", FakeEvaluator(fail_edges={8}), k=10)
    recs = read_jsonl(tmp_path / "a" / "candidates.jsonl")
    failed = [r for r in recs if r["status"] == "failed"]
    assert failed and all("out of memory" in r["error"] and r["score"] is None for r in failed)
    assert all(h["edges"] != 8 for h in search.state["history"])


def test_every_candidate_failing_stops_with_state_kept(tmp_path):
    with pytest.raises(SearchStalled, match="every candidate of step 1 failed"):
        run(tmp_path / "a", FakeEvaluator(fail_edges={9}))
    state = json.loads((tmp_path / "a" / "state.json").read_text())
    assert state["plan"]["step"] == 1 and len(state["plan"]["results"]) == 3
    _, best = run(tmp_path / "a", resume=True)  # cause fixed: resume retries the step
    assert best is not None


def test_duplicate_graphs_are_cached(tmp_path):
    ev = FakeEvaluator()
    search, _ = run(tmp_path / "a", ev, k=10)
    recs = search.state["records"]
    cached = [r for r in recs if r["status"] == "cached"]
    assert cached, "removing edges from a small DAG revisits graphs"
    trained = {r["hash"]: r for r in recs if r["status"] == "ok"}
    for r in cached:
        assert r["score"] == trained[r["hash"]]["score"] and r["seconds"] == 0.0
    assert ev.calls == len(trained)


def test_resume_refuses_missing_damaged_or_different(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        run(tmp_path / "none", resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no search state"):
        run(tmp_path / "empty", resume=True)
    run(tmp_path / "a", settings={"nodes": 5})
    with pytest.raises(UserError, match="already holds a search"):
        run(tmp_path / "a", settings={"nodes": 5})
    with pytest.raises(UserError, match="--nodes"):
        run(tmp_path / "a", settings={"nodes": 6}, resume=True)
    (tmp_path / "a" / "state.json").write_text('{"version": 1, "gra')
    with pytest.raises(UserError, match="damaged"):
        run(tmp_path / "a", resume=True)


def test_objectives():
    ok = Result(metrics={"accuracy": 0.7}, macs=1e7)
    assert CNNObjective()(ok) == pytest.approx(0.6)
    assert CNNObjective()(Result(metrics={"accuracy": float("nan")}, macs=1e7)) == -math.inf
    assert CNNObjective()(Result(status="failed")) == -math.inf
    rnn = RNNObjective()(Result(metrics={"perplexity": 100.0}, macs=1e6))
    assert rnn == pytest.approx(25.0)
    assert RNNObjective()(Result(metrics={"perplexity": float("inf")}, macs=1e6)) == -math.inf


@pytest.mark.parametrize("where", ["journal", "state"])
def test_crash_during_a_write_resumes_cleanly(tmp_path, monkeypatch, where):
    """Killed mid-write: a torn journal line or a half-written state file never survives."""
    import searching.cell_search as shrink
    from api.runs import atomic_io

    ref, ref_best = run(tmp_path / "ref")
    calls = {"n": 0}
    real_append, real_replace = shrink.append_jsonl, atomic_io.os.replace

    def torn_append(path, record):
        calls["n"] += 1
        if calls["n"] == 4:
            with open(path, "a") as f:
                f.write(json.dumps(record)[:25])  # half a line, then the process dies
            raise SystemExit("killed mid-append")
        real_append(path, record)

    def dying_replace(src, dst):
        if str(dst).endswith("state.json"):
            calls["n"] += 1
            if calls["n"] == 6:
                raise SystemExit("killed before the rename")
        real_replace(src, dst)

    if where == "journal":
        monkeypatch.setattr(shrink, "append_jsonl", torn_append)
    else:
        monkeypatch.setattr(atomic_io.os, "replace", dying_replace)
    with pytest.raises(SystemExit):
        run(tmp_path / "crash")
    monkeypatch.undo()
    json.loads((tmp_path / "crash" / "state.json").read_text())  # never half-written
    _, best = run(tmp_path / "crash", resume=True)
    assert best == ref_best
    assert journal(tmp_path / "crash") == journal(tmp_path / "ref")
    assert not list((tmp_path / "crash").glob(".*.tmp"))  # temporaries are cleaned up
