"""The fused trainers on a GPU (skipped without one; bench/gpu_speed.sh runs them): in float64
on CUDA, each member's result equals its separate training there, for the RNN and for the CNN
with and without CUDA graphs (the device paths the CPU tests cannot reach)."""

import pytest
import torch

from searching.fused.cuda_graph import reset_fallback_note
from searching.fused.cnn_trainer import train_fused as train_fused_cnn
from searching.fused.rnn_trainer import train_fused as train_fused_rnn
from tests.searching.fused.test_fused_proxy import EDGES as CNN_EDGES, PARENT as CNN_PARENT, F64Evaluator, toy
from tests.searching.fused.test_fused_proxy import tiny_config, tiny_spec
from tests.searching.fused.test_fused_rnn import EDGES as RNN_EDGES, PARENT as RNN_PARENT, _evaluator

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("graphs_on", [False, True])
def test_fused_rnn_on_cuda_equals_separate(tmp_path, graphs_on, float64):
    reset_fallback_note()
    ev = _evaluator(tmp_path, short_prob=0.3, patience=1, device="cuda")
    fused_ev = _evaluator(tmp_path / "g", short_prob=0.3, patience=1, device="cuda")
    graphs = [RNN_PARENT.remove_edge(*e) for e in RNN_EDGES]
    seeds = [11, 12, 13, 14]
    for g, s, r in zip(graphs, seeds, train_fused_rnn(fused_ev, RNN_PARENT, graphs, seeds,
                                                        cuda_graphs=graphs_on)):
        alone = ev.evaluate(g, s)
        assert r.ok and alone.ok and r.epochs == alone.epochs
        assert r.metrics["perplexity"] == pytest.approx(alone.metrics["perplexity"], rel=1e-6)


@pytest.mark.parametrize("graphs_on", [False, True])
def test_fused_cnn_on_cuda_equals_separate(graphs_on, float64):
    reset_fallback_note()
    spec = tiny_spec()
    cfg = tiny_config(epochs=4, bn_recal_batches=2, device="cuda")
    graphs = [CNN_PARENT.remove_edge(i, j) for i, j in CNN_EDGES]
    seeds = [5, 6, 7]
    fused = train_fused_cnn(F64Evaluator(toy(), spec, cfg), CNN_PARENT, graphs, seeds,
                            cuda_graphs=graphs_on)
    ev = F64Evaluator(toy(), spec, cfg)
    for g, s, r in zip(graphs, seeds, fused):
        alone = ev.evaluate(g, s)
        assert r.ok and alone.ok and r.epochs == alone.epochs
        assert r.metrics["accuracy"] == alone.metrics["accuracy"]
        for a, b in zip(r.curve, alone.curve):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
