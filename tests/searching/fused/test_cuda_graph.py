"""CUDA-graph capture of the CNN proxy step (searching/fused/cuda_graph.py, --cuda_graphs): where capture is
impossible the eager step runs, exactly, with one line saying so; on CUDA, graphed == eager
within tolerance (skipped without a GPU)."""
import contextlib

import pytest
import torch

from searching.fused.cuda_graph import GraphedStep, make_capturable, reset_fallback_note, unsupported_reason
from api.datasets import DeviceBatches
from api.spaces.dag.graph import CellGraph
from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig, TrainStep, _param_groups
from searching.fused.graphed_proxy import GraphedCNNProxyEvaluator
from tests.conftest import requires_cuda
from tests.searching.autoshrink.test_proxy_bn import TINY_NET, toy_proxy

pytestmark = pytest.mark.usefixtures("one_thread")
GRAPH = CellGraph.complete(3, ["input", "Conv1x1", "SepConv3x3"])
CUDA = requires_cuda


@pytest.fixture(autouse=True)
def fresh_note():
    reset_fallback_note()
    yield
    reset_fallback_note()


def _train(device, graphs: bool, epochs=3, seed=0, wrap=lambda step: step, capturable=False):
    """Per-epoch (loss sum, correct) and final weights of a tiny proxy net trained eagerly or
    through GraphedStep, on the toy data with a short last batch (100 = 3 x 32 + 4)."""
    data = toy_proxy(n_train=100, n_val=8)
    mean, std = data.stats()
    train = DeviceBatches(data.train_x, data.train_y, mean, std, device)
    ev = CNNProxyEvaluator(data, TINY_NET, CNNProxyTrainConfig())
    torch.manual_seed(seed)
    model = ev.build(GRAPH).to(device)
    opt = torch.optim.Adam(_param_groups(model, 1e-5), lr=1e-2)
    if capturable:  # the eager reference with the graphed step's Adam arithmetic
        make_capturable(opt)
    step = TrainStep(model, opt, False, device, amp_cache=not graphs)
    run = GraphedStep(wrap(step), opt, device, warmup=2) if graphs else step
    gen = torch.Generator().manual_seed(seed)
    sums = []
    model.train()
    for _ in range(epochs):
        step.reset()
        for x, y in train.batches(32, gen):
            run(x, y)
        sums.append((float(step.total_loss), int(step.correct)))
    return sums, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, run


def test_fallback_on_cpu_is_exactly_the_eager_step(capsys):
    eager_sums, eager_w, _ = _train(torch.device("cpu"), graphs=False)
    graph_sums, graph_w, run = _train(torch.device("cpu"), graphs=True)
    assert not run.graphed and "cpu" in run.reason
    assert graph_sums == eager_sums
    assert eager_w.keys() == graph_w.keys()
    for k in eager_w:
        assert torch.equal(eager_w[k], graph_w[k]), k
    err = capsys.readouterr().err
    assert err.count("CUDA graphs:") == 1 and "eagerly" in err


def test_fallback_is_said_once_per_process(capsys):
    model = torch.nn.Linear(2, 2)
    for _ in range(3):  # three candidates, one line
        GraphedStep(lambda x, y: None, torch.optim.Adam(model.parameters()), "cpu")
    lines = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("CUDA graphs: not available on cpu")


class FakeGraph:
    """Stands in for torch.cuda.CUDAGraph on CPU: a 'capture' records the step on the static
    buffers without running it, a replay runs it on whatever the buffers then hold."""
    capturing = None
    fail = False

    def __init__(self):
        self.fn, self.replays = None, 0

    def replay(self):
        self.replays += 1
        self.fn()


@contextlib.contextmanager
def fake_capture(graph, **_):
    if FakeGraph.fail:
        raise RuntimeError("operation not permitted when stream is capturing\nmore")
    FakeGraph.capturing = graph
    try:
        yield
    finally:
        FakeGraph.capturing = None


def recording(step):
    def run(x, y):
        if FakeGraph.capturing is not None:
            FakeGraph.capturing.fn = lambda: step(x, y)
        else:
            step(x, y)
    return run


class FakeStream:
    def wait_stream(self, other):
        pass


@pytest.fixture
def fake_cuda(monkeypatch):
    """The CUDA side of GraphedStep replaced by CPU stand-ins, to test its control flow."""
    import searching.fused.cuda_graph as cg

    monkeypatch.setattr(cg, "unsupported_reason", lambda opt, device: None)
    monkeypatch.setattr(cg, "make_capturable", lambda opt: None)  # CPU Adam cannot be
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: FakeStream())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_capture)
    FakeGraph.fail = False
    yield
    FakeGraph.fail = False


def test_warmup_capture_per_shape_and_replay_from_static_buffers(fake_cuda, capsys):
    """Control flow on CPU stand-ins: per shape, 2 warm-up steps, then a capture that runs
    nothing and a replay of the batch copied into the static buffers; the short last batch
    gets its own graph. Training is then exactly the eager one."""
    eager_sums, eager_w, _ = _train(torch.device("cpu"), graphs=False)
    sums, w, run = _train(torch.device("cpu"), graphs=True, wrap=recording)
    assert run.graphed and len(run.graphs) == 2
    replays = sorted((key[0][0], g.replays) for key, (g, _, _) in run.graphs.items())
    assert replays == [(4, 1), (32, 7)]  # 3 epochs of 3 + 1: epochs 1-2 warm the short one
    assert sums == eager_sums
    for k in eager_w:
        assert torch.equal(eager_w[k], w[k]), k
    assert "CUDA graphs" not in capsys.readouterr().err


def test_capture_failure_falls_back_once_and_loses_no_step(fake_cuda, capsys):
    FakeGraph.fail = True
    eager_sums, eager_w, _ = _train(torch.device("cpu"), graphs=False)
    sums, w, run = _train(torch.device("cpu"), graphs=True, wrap=recording)
    assert not run.graphed and run.reason.startswith("capture failed (RuntimeError: operation")
    assert sums == eager_sums
    for k in eager_w:
        assert torch.equal(eager_w[k], w[k]), k
    err = capsys.readouterr().err
    assert err.count("CUDA graphs: capture failed") == 1 and "more" not in err


def test_unsupported_optimizers_and_capturable_switch():
    p = torch.nn.Parameter(torch.zeros(2))
    assert unsupported_reason(torch.optim.Adam([p]), "cpu") == "not available on cpu"
    if torch.cuda.is_available():
        q = torch.nn.Parameter(torch.zeros(2, device="cuda"))
        assert unsupported_reason(torch.optim.Adam([q]), "cuda") is None
        assert unsupported_reason(torch.optim.SGD([q], lr=0.1), "cuda") is None
        assert "LBFGS" in unsupported_reason(torch.optim.LBFGS([q]), "cuda")
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(2)
    opt.step()  # a counter exists already: stays on the (here: CPU) parameter's device
    make_capturable(opt)
    assert opt.param_groups[0]["capturable"] and opt.state[p]["step"].device == p.device
    sgd = torch.optim.SGD([p], lr=0.1)
    make_capturable(sgd)  # no such option: untouched
    assert "capturable" not in sgd.param_groups[0]


def _proxy(graphs: bool):
    """The CNN proxy evaluator class with --cuda_graphs (graphs) or without."""
    return GraphedCNNProxyEvaluator if graphs else CNNProxyEvaluator


def test_proxy_flag_on_cpu_gives_the_same_result_and_one_line(capsys):
    data = toy_proxy(n_train=100, n_val=40)
    kw = dict(epochs=2, batch_size=32, val_batch_size=20, lr=1e-2, patience=9,
              min_acc_epoch=0, overfit_ratio=float("inf"))
    results = [_proxy(g)(data, TINY_NET, CNNProxyTrainConfig(**kw)).evaluate(GRAPH, 1)
               for g in (False, True, True)]
    curves = [[{k: v for k, v in c.items() if k != "seconds"} for c in r.curve]
              for r in results]
    assert curves[0] == curves[1] == curves[2]
    assert results[0].metrics == results[1].metrics
    assert capsys.readouterr().err.count("CUDA graphs:") == 1
    ident = [_proxy(g)(data, TINY_NET, CNNProxyTrainConfig()).describe() for g in (False, True)]
    assert ident[0] == ident[1]  # a speed setting: not part of the evaluator's identity


def test_batched_validation_matches_the_per_batch_one():
    data = toy_proxy(n_train=8, n_val=50)
    ev = GraphedCNNProxyEvaluator(data, TINY_NET, CNNProxyTrainConfig(val_batch_size=20))
    torch.manual_seed(0)
    model = ev.build(GRAPH)
    _, val = ev._device_data(torch.device("cpu"))
    loss, acc = ev._validate(model, val, False, torch.contiguous_format)
    loss_b, acc_b = ev.validate_batched(model, val, False, torch.contiguous_format)
    assert acc_b == acc
    assert loss_b == pytest.approx(loss, rel=1e-5)


def test_cli_flag_reaches_the_proxy_and_is_a_runtime_flag(tmp_path):
    from searching.cnn.autoshrink_cnn import RUNTIME_FLAGS, build_parser
    from searching.fused import accelerate

    assert "cuda_graphs" in RUNTIME_FLAGS
    assert not build_parser().parse_args([]).cuda_graphs
    args = build_parser().parse_args(["--cuda_graphs"])
    assert args.cuda_graphs

    class Search:  # what accelerate() touches of a search
        evaluator = CNNProxyEvaluator(toy_proxy(n_train=8, n_val=8), TINY_NET,
                                      CNNProxyTrainConfig())
        executor = None

    search = accelerate(Search(), args)
    assert type(search.evaluator) is GraphedCNNProxyEvaluator and search.executor is None
    assert type(accelerate(Search(), build_parser().parse_args([])).evaluator) \
        is CNNProxyEvaluator


@CUDA
def test_graphed_matches_eager_on_cuda():
    """Warm-up (2 steps per shape), capture of the full and of the short last batch, replays:
    per-epoch sums and final weights agree with the eager step within float tolerance
    (the same kernels; the eager reference uses capturable Adam too, so that near-zero
    gradients normalised by Adam cannot amplify one-ulp differences of its arithmetic)."""
    device = torch.device("cuda")
    torch.backends.cudnn.deterministic = True
    try:
        eager_sums, eager_w, _ = _train(device, graphs=False, epochs=4, capturable=True)
        graph_sums, graph_w, run = _train(device, graphs=True, epochs=4)
    finally:
        torch.backends.cudnn.deterministic = False
    assert run.graphed, run.reason
    assert len(run.graphs) == 2  # the full batch and the short last one
    for (le, ce), (lg, cg) in zip(eager_sums, graph_sums):
        assert lg == pytest.approx(le, rel=1e-3, abs=1e-3)
        assert abs(cg - ce) <= 2
    for k in eager_w:
        if eager_w[k].is_floating_point():
            torch.testing.assert_close(graph_w[k], eager_w[k], rtol=1e-3, atol=1e-3)
        else:
            assert torch.equal(graph_w[k], eager_w[k]), k  # num_batches_tracked: every step


@CUDA
def test_proxy_with_graphs_on_cuda_trains_like_eager(capsys):
    """The whole proxy with --cuda_graphs (graphed steps, batched validation) against eager:
    the same first epoch within float tolerance, the same course after it (the two Adams differ
    by float rounding, which training may amplify), and no fallback."""
    data = toy_proxy(n_train=100, n_val=40)
    kw = dict(epochs=4, batch_size=32, val_batch_size=20, lr=1e-2, patience=9,
              min_acc_epoch=0, overfit_ratio=float("inf"), cudnn_benchmark=False,
              device="cuda")
    torch.backends.cudnn.deterministic = True
    try:
        eager, graphed = [_proxy(g)(data, TINY_NET, CNNProxyTrainConfig(**kw)).evaluate(GRAPH, 1)
                          for g in (False, True)]
    finally:
        torch.backends.cudnn.deterministic = False
    assert "CUDA graphs" not in capsys.readouterr().err
    assert len(graphed.curve) == len(eager.curve) == 4
    first_e, first_g = eager.curve[0], graphed.curve[0]
    assert first_g["train_loss"] == pytest.approx(first_e["train_loss"], rel=1e-3)
    assert first_g["val_loss"] == pytest.approx(first_e["val_loss"], rel=1e-2)
    for e, g in zip(eager.curve, graphed.curve):
        assert g["train_loss"] == pytest.approx(e["train_loss"], rel=0.1, abs=0.05)
        assert abs(g["val_acc"] - e["val_acc"]) <= 0.15
