"""What a search keeps: every trained candidate's learning curve (curves.jsonl, curves.png),
and an RNN cost that does not make the empty cell free."""
import math

import pytest

from api.runs.atomic_io import read_jsonl
from api.spaces.dag.graph import CellGraph
from api.search.evaluator import Evaluator, Result
from api.search.objectives import CNNObjective, RNNObjective
from searching.shrink import ShrinkConfig, ShrinkSearch

OPS = ["input", "SepConv3x3", "Conv1x1", "SepConv3x3"]


class CurveEvaluator(Evaluator):
    """A deterministic per-epoch curve per graph; ``crash_at`` simulates a kill."""

    metric = "accuracy"
    curve_metric = "val_acc"

    def __init__(self, crash_at=None):
        self.calls, self.crash_at = 0, crash_at

    def evaluate(self, graph, seed):
        self.calls += 1
        if self.calls == self.crash_at:
            raise SystemExit("simulated kill")
        base = 0.2 + 0.05 * graph.num_edges
        curve = [{"epoch": e, "train_loss": 2.0 / e, "val_acc": base + 0.01 * e + seed % 7 / 1e3}
                 for e in (1, 2, 3)]
        return Result(metrics={"accuracy": curve[-1]["val_acc"]}, macs=1e6 * (1 + graph.num_edges),
                      params=10, epochs=3, curve=curve)


def run(root, evaluator, resume=False, plots=False):
    search = ShrinkSearch(str(root), evaluator, CNNObjective(), ShrinkConfig(k=2, seed=0),
                          plots=plots, progress=False)
    if resume:
        search.resume()
    else:
        search.start(lambda rng: CellGraph.complete(4, OPS))
    return search, search.run()


@pytest.mark.slow
def test_curves_are_kept_for_every_trained_candidate(tmp_path):
    search, _ = run(tmp_path / "a", CurveEvaluator(), plots=True)
    cands = read_jsonl(tmp_path / "a" / "candidates.jsonl")
    curves = read_jsonl(tmp_path / "a" / "curves.jsonl")
    assert all("curve" not in r for r in cands)  # the journal stays one short line each
    trained = [r for r in cands if r["status"] == "ok"]
    assert [c["key"] for c in curves] == [r["key"] for r in trained]
    for c, r in zip(curves, trained):
        assert c["hash"] == r["hash"] and c["step"] == r["step"]
        assert [row["epoch"] for row in c["curve"]] == [1, 2, 3]
        assert c["curve"][-1]["val_acc"] == pytest.approx(r["accuracy"])
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("crash_at", [2, 5])
def test_curves_after_a_crash_and_resume_match_the_uninterrupted_run(tmp_path, crash_at):
    run(tmp_path / "ref", CurveEvaluator())
    with pytest.raises(SystemExit):
        run(tmp_path / "crash", CurveEvaluator(crash_at=crash_at))
    run(tmp_path / "crash", CurveEvaluator(), resume=True)
    assert read_jsonl(tmp_path / "crash" / "curves.jsonl") == \
        read_jsonl(tmp_path / "ref" / "curves.jsonl")


def test_rnn_cost_is_floored_at_one_edge():
    nhid = 100
    objective = RNNObjective(1.0, min_flops=nhid ** 2)
    empty = Result(metrics={"perplexity": 300.0}, macs=0.0)
    one_edge = Result(metrics={"perplexity": 300.0}, macs=float(nhid ** 2))
    two_edges = Result(metrics={"perplexity": 300.0}, macs=2.0 * nhid ** 2)
    assert objective(empty) == objective(one_edge) > objective(two_edges)
    # The old floor (1 FLOP) gave the empty cell log10(nhid^2) = 4 free points.
    assert RNNObjective(1.0)(empty) - objective(empty) == pytest.approx(math.log10(nhid ** 2))


def test_rnn_search_objective_uses_one_edge_floor(tmp_path):
    from tests.conftest import write_chain_corpus
    from searching.rnn.autoshrink_rnn import build_components
    from searching.rnn.train import build_parser

    corpus = write_chain_corpus(tmp_path / "c", 20, 4, vocab=10, follow=0.7)
    args = build_parser().parse_args(["--data", str(corpus), "--save", str(tmp_path / "s"),
                                      "--emsize", "16", "--nodes", "3"])
    objective = build_components(args).objective
    assert objective.min_flops == 16 ** 2


def test_cnn_objective_is_unchanged():
    r = Result(metrics={"accuracy": 0.5}, macs=1e7)
    assert CNNObjective(0.1)(r) == pytest.approx(0.5 - 0.1)


def test_compare_retraining_stops_on_a_bug_instead_of_reporting_nan(tmp_path, cifar_root,
                                                                     monkeypatch, capsys):
    import argparse

    from api.errors import UserError
    from api.spaces.dag.graph_io import save_graph
    from api.spaces.autoshrink_cnn.network import NetworkSpec
    from searching import compare
    from searching.cnn.proxy import CNNProxyEvaluator

    graph = CellGraph.complete(3, ["input", "Conv1x1", "SepConv3x3"], space="cnn",
                               settings={"network": NetworkSpec(scale=[0.25], pool=[1],
                                                                replicate=[1]).to_dict()})
    path = str(tmp_path / "graph-best")
    save_graph(graph, path, png=False)

    def broken(self, graph, seed):
        raise TypeError("a bug in our code")

    monkeypatch.setattr(CNNProxyEvaluator, "evaluate", broken)
    args = argparse.Namespace(data=str(cifar_root), retrain_train=20, retrain_val=10,
                              retrain_epochs=1)
    with pytest.raises(UserError, match="raised TypeError.*a bug"):
        compare.retrain("cnn", path, args)
    assert "Traceback" in capsys.readouterr().err
