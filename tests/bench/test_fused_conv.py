"""The fused benches on CPU at tiny sizes: bench/fused_conv.py's batched-matmul formulations
equal the grouped convolutions (float64: output and both gradients), and the fused variants of
bench/cnn_step.py and bench/rnn_step.py run."""
import importlib.util
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO


def _bench(name):
    path = REPO / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cnn_step, fc = _bench("cnn_step"), _bench("fused_conv")

pytestmark = pytest.mark.usefixtures("one_thread")


def _t(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def _same(a, b):
    (ya, ga), (yb, gb) = a, b
    assert torch.allclose(ya, yb, rtol=1e-10, atol=1e-12)
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_bmm_conv_equals_grouped_conv(k):
    M, cin, cout = 3, 4, 5
    x, w = _t(2, M * cin, 6, 6), _t(M * cout, cin, k, k)
    grad = _t(2, M * cout, 6, 6)
    _same(fc.forward_backward(lambda a, b: fc.grouped_conv(a, b, M), (x, w), grad),
          fc.forward_backward(lambda a, b: fc.bmm_conv(a, b, M), (x, w), grad))


def test_member_major_bmm_and_einsum_depthwise_equal_grouped_conv():
    M, cin, cout, b = 2, 3, 4, 2
    x, w = _t(b, M * cin, 5, 5), _t(M * cout, cin, 1, 1)
    xmm = x.view(b, M, cin, -1).permute(1, 2, 0, 3).reshape(M, cin, -1).contiguous()
    ref = fc.forward_backward(lambda a, c: fc.grouped_conv(a, c, M), (x, w))
    mm = fc.forward_backward(fc.bmm_member_major, (xmm, w))
    assert fc.agree(ref, mm, member_major=True, tol=1e-10)
    wd = _t(M * cin, 1, 3, 3)
    _same(fc.forward_backward(lambda a, c: fc.grouped_conv(a, c, a.shape[1]), (x, wd)),
          fc.forward_backward(fc.einsum_depthwise, (x, wd)))


def test_fused_conv_bench_runs_tiny(capsys):
    report = fc.main(["--members", "2", "--batch", "1", "--repeats", "1", "--warmup", "0",
                      "--device", "cpu"])
    assert len(report) == 9 and all(ms > 0 for _, times in report for _, ms in times)
    assert "fastest" in capsys.readouterr().out


def test_cnn_step_fused_variant_runs_on_cpu(capsys):
    cnn_step.main(["--nodes", "4", "--batch_size", "2", "--warmup", "0", "--repeats", "1",
                   "--fused_members", "2", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "fused k2" in out and "ms/candidate-step" in out
    assert "graphed fused: skipped" in out


@pytest.mark.slow
def test_rnn_step_bench_runs_tiny(tmp_path, capsys, monkeypatch):
    from tests.conftest import write_chain_corpus
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    root = write_chain_corpus(tmp_path, 900, eval_lines=20, vocab=20, follow=0.7, pad=True,
                              seed=0)
    rnn_step = _bench("rnn_step")
    rnn_step.main(["--data", str(root), "--fused_members", "2", "--steps", "1",
                   "--device", "cpu"])
    out = capsys.readouterr().out
    assert "separate" in out and "fused k2" in out and "ms per candidate-step" in out
    # the CUDA-only graphed variant's step, eager here (GraphedStep's CPU fallback)
    from api.spaces.dag.graph import CellGraph
    from api.lm.data import Corpus, batchify
    corpus = Corpus(str(root))
    parent = CellGraph.complete(6, list(rnn_step.REFERENCE_OPS), space="rnn")
    graphs = [parent.remove_edge(*e) for e in parent.edge_list[:2]]
    train = batchify(corpus.train, rnn_step.BATCH)
    step = rnn_step.graphed_fused_step(parent, graphs, corpus, None, train, torch.device("cpu"))
    assert rnn_step.time_step(step, torch.device("cpu"), 0, 1)[1] > 0
