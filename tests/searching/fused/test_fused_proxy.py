"""Fused proxy training (searching/fused/cnn_trainer.py): each candidate's result equals its own
``CNNProxyEvaluator.evaluate`` (float64, CPU), epoch-ending accuracy checks and early stops
included, with members that stop at different batches and epochs."""
import numpy as np
import pytest
import torch

from api.datasets import ProxyData
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.network import NetworkSpec
from searching.fused.cnn_trainer import train_fused
from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig

# float64 equivalence runs of the fused trainers: part of the full suite, not the inner loop
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


def toy(n_train=40, n_val=24, size=16, seed=0):
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 100, (n, 3, size, size)).astype(np.uint8)
        h = size // 2
        for i, c in enumerate(y):
            r, col = divmod(int(c), 2)
            x[i, :, r * h:(r + 1) * h, col * h:(col + 1) * h] += 120
        return x, y

    return ProxyData(*split(n_train), *split(n_val), 4, "toy")


class F64Evaluator(CNNProxyEvaluator):
    def _device_data(self, device):
        tr, va = super()._device_data(device)
        tr.x, va.x = tr.x.double(), va.x.double()
        return tr, va


PARENT = CellGraph.complete(4, ["input", "SepConv3x3", "Conv1x1", "Conv3x3"])


def tiny_spec() -> NetworkSpec:
    return NetworkSpec(scale=[1.0, 2.0], pool=[1, 2], replicate=[1, 1], base_channels=4,
                       stem_channels=8, num_classes=4, image_size=16)


def tiny_config(**kw) -> CNNProxyTrainConfig:
    """The tests' proxy recipe: small batches, quick accuracy stops and early stops."""
    return CNNProxyTrainConfig(**{"epochs": 6, "lr": 1e-2, "batch_size": 16, "val_batch_size": 16,
                               "train_acc_stop": 0.6, "patience": 2, "min_acc_epoch": 0,
                               "channels_last": False, **kw})
EDGES = [(0, 1), (2, 3), (1, 3)]


@pytest.mark.parametrize("recal", [2, 0])
def test_fused_results_equal_separate_evaluations(recal, monkeypatch):
    import searching.fused.cnn_trainer as fp
    actives = []
    step = fp.MemberAdam.step
    monkeypatch.setattr(fp.MemberAdam, "step",
                        lambda self, active: (actives.append(list(active)), step(self, active)))
    torch.set_default_dtype(torch.float64)
    try:
        spec = tiny_spec()
        cfg = tiny_config(bn_recal_batches=recal)
        ev = F64Evaluator(toy(), spec, cfg)
        graphs = [PARENT.remove_edge(i, j) for i, j in EDGES]
        seeds = [5, 6, 7]
        fused = train_fused(ev, PARENT, graphs, seeds)
        # the test exercises both: members that sit out the rest of an epoch (train accuracy
        # past the threshold) while others train, and members stopped epochs before others
        assert any(len(a) < len(graphs) for a in actives)
        assert len({r.epochs for r in fused}) > 1
        for g, s, r in zip(graphs, seeds, fused):
            alone = ev.evaluate(g, s)
            assert r.ok and alone.ok
            assert (r.epochs, r.macs, r.params) == (alone.epochs, alone.macs, alone.params)
            assert r.metrics["accuracy"] == alone.metrics["accuracy"]
            for a, b in zip(r.curve, alone.curve):
                assert a["val_acc"] == b["val_acc"]
                assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
                assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)

    finally:
        torch.set_default_dtype(torch.float32)


# ---------------------------------------------------------------- in a search (FusedExecutor)
from api.search.objectives import CNNObjective  # noqa: E402
from api.runs.atomic_io import read_jsonl  # noqa: E402
from searching.fused.executor import FusedExecutor  # noqa: E402
from searching.shrink import ShrinkConfig, ShrinkSearch  # noqa: E402


class KilledMidStep(FusedExecutor):
    """Dies (SystemExit, as a kill) in the given call after yielding one result."""

    def __init__(self, die_in_call):
        super().__init__()
        self.calls, self.die_in_call = 0, die_in_call

    def run(self, evaluator, tasks):
        self.calls += 1
        for n, pair in enumerate(super().run(evaluator, tasks)):
            if self.calls == self.die_in_call and n == 1:
                raise SystemExit("killed")
            yield pair


def _search(root, executor, resume=False):
    spec = tiny_spec()
    cfg = tiny_config(epochs=3, train_acc_stop=0.98, patience=5, bn_recal_batches=2)
    search = ShrinkSearch(str(root), F64Evaluator(toy(), spec, cfg), CNNObjective(),
                          ShrinkConfig(k=3, keep_fraction=0.67, seed=0), plots=False,
                          progress=False, executor=executor)
    if resume:
        search.resume()
    else:
        search.start(lambda rng: PARENT)
    return search.run()


def _journal(root):
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in read_jsonl(root / "candidates.jsonl")]


def _same(a, b):
    assert [r["key"] for r in a] == [r["key"] for r in b]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float):
                assert ra[k] == pytest.approx(rb[k], rel=1e-6), k
            else:
                assert ra[k] == rb[k], k


def test_search_with_fused_executor_matches_and_resumes(tmp_path):
    torch.set_default_dtype(torch.float64)
    try:
        plain = _search(tmp_path / "plain", None)
        ex = FusedExecutor()
        fused = _search(tmp_path / "fused", ex)
        assert ex.groups == [3, 3]  # both steps trained fused
        assert fused.same_structure(plain)
        _same(_journal(tmp_path / "fused"), _journal(tmp_path / "plain"))
        # killed in step 2 after one of its candidates was recorded, then resumed fused:
        # the remaining two train as a group of two, with the same results
        with pytest.raises(SystemExit):
            _search(tmp_path / "killed", KilledMidStep(die_in_call=2))
        ex = FusedExecutor()
        resumed = _search(tmp_path / "killed", ex, resume=True)
        assert ex.groups == [2]
        assert resumed.same_structure(plain)
        _same(_journal(tmp_path / "killed"), _journal(tmp_path / "plain"))
    finally:
        torch.set_default_dtype(torch.float32)


def test_fused_executor_falls_back_and_says_so_once(capsys):
    class Plain:
        threads = 1

        def evaluate(self, graph, seed):
            from api.search.evaluator import Result
            return Result(metrics={"accuracy": seed / 10})

    from api.search.evaluator import Task
    ex = FusedExecutor()
    tasks = [Task(f"t{i}", PARENT.remove_edge(*e), i) for i, e in enumerate(EDGES)]
    for _ in range(2):
        out = list(ex.run(Plain(), tasks))
        assert [r.metrics["accuracy"] for _, r in out] == [0.0, 0.1, 0.2]
    assert ex.groups == []
    assert capsys.readouterr().err.count("fused: training separately") == 1


def test_fused_executor_takes_any_device():
    """The fused trainer follows the evaluator's device: no refusal for CUDA (the check builds
    nothing, so it runs without a GPU)."""
    from api.search.evaluator import Task
    spec = tiny_spec()
    ev = CNNProxyEvaluator(toy(), spec, CNNProxyTrainConfig(device="cuda"))
    tasks = [Task(f"t{i}", PARENT.remove_edge(*e), i) for i, e in enumerate(EDGES)]
    assert FusedExecutor()._why_not(ev, tasks) is None


def test_member_orders_are_the_separate_runs_batches():
    """_orders draws each listed member's permutation from its own CPU generator exactly as
    DeviceBatches.batches does for the separate run (other rows are untouched generators)."""
    from api.datasets import DeviceBatches
    from searching.fused.cnn_trainer import _orders
    d = toy(n_train=37)
    data = DeviceBatches(d.train_x, d.train_y, *d.stats(), torch.device("cpu"))
    gens = [torch.Generator().manual_seed(s) for s in (3, 4, 5)]
    order = _orders(len(data), gens, [0, 2], 3, torch.device("cpu"))
    for m, seed in ((0, 3), (2, 5)):
        batches = list(data.batches(8, torch.Generator().manual_seed(seed)))
        for b, (x, y) in enumerate(batches):
            idx = order[m, 8 * b:8 * b + 8]
            assert torch.equal(data.x[idx], x) and torch.equal(data.y[idx], y)
    assert torch.equal(order[1], torch.arange(len(data)))
    assert torch.equal(gens[1].get_state(), torch.Generator().manual_seed(4).get_state())


def test_member_adam_steps_per_member_and_is_capturable(monkeypatch):
    """MemberAdam updates only the active members, counts steps per member, keeps the last
    active set when given none (the form a captured step replays), and searching.fused.cuda_graph
    accepts it as capturable (nothing to switch)."""
    import searching.fused.cuda_graph as cg
    from searching.fused.cnn_trainer import MemberAdam
    p = torch.nn.Parameter(torch.zeros(2, 3))
    q = torch.nn.Parameter(torch.zeros(4))
    opt = MemberAdam([{"params": [p], "weight_decay": 0.1}, {"params": [q], "weight_decay": 0}],
                     2, 1e-2)
    for active in ([1], None):
        p.grad, q.grad = torch.ones(2, 3), torch.ones(4)
        opt.step(active)
    assert opt.steps == [0, 2]
    assert not p[0].any() and not q[:2].any() and p[1].lt(0).all() and q[2:].lt(0).all()
    ref = torch.nn.Parameter(torch.zeros(3))
    adam = torch.optim.Adam([ref], lr=1e-2, weight_decay=0.1)
    for _ in range(2):
        ref.grad = torch.ones(3)
        adam.step()
    assert torch.allclose(p[1], ref, rtol=1e-5, atol=0)  # float32 bias corrections
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cg.unsupported_reason(opt, "cuda") is None
    cg.make_capturable(opt)
    opt.zero_grad(set_to_none=True)
    assert p.grad is None and q.grad is None


def test_cuda_graphs_flag_gives_the_eager_results_where_capture_is_impossible(capsys):
    """With cuda_graphs the fused step always saves and restores the inactive members' BN
    statistics (the captured step has no branch on the active set) and validates in large
    batches; on the CPU it runs eagerly (one note) with the same results as without."""
    from searching.fused.cuda_graph import reset_fallback_note
    torch.set_default_dtype(torch.float64)
    try:
        spec = tiny_spec()
        cfg = tiny_config(epochs=4, val_batch_size=8, patience=1, bn_recal_batches=0)
        graphs = [PARENT.remove_edge(i, j) for i, j in EDGES]
        plain = train_fused(F64Evaluator(toy(), spec, cfg), PARENT, graphs, [5, 6, 7])
        reset_fallback_note()
        graphed = train_fused(F64Evaluator(toy(), spec, cfg), PARENT, graphs, [5, 6, 7],
                              cuda_graphs=True)
        assert capsys.readouterr().err.count("CUDA graphs: not available on cpu") == 1
        for a, b in zip(graphed, plain):
            assert (a.epochs, a.metrics) == (b.epochs, b.metrics)
            for ca, cb in zip(a.curve, b.curve):
                assert ca["val_acc"] == cb["val_acc"] and ca["train_loss"] == cb["train_loss"]
                assert ca["val_loss"] == pytest.approx(cb["val_loss"], rel=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)
