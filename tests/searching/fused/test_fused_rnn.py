"""Fused RNN candidates (searching/fused/rnn_model.py, searching/fused/rnn_trainer.py): in float64 on the CPU,
each member's losses, gradients and whole proxy training equal its own model's, with members
of different sequence lengths, pruned nodes, and early stops at different epochs."""
from pathlib import Path

import pytest
import torch

from api.spaces.dag.graph import CellGraph
from api.lm.data import Corpus
from api.lm.embedding import embedding_matrix
from searching.fused.rnn_model import FusedRNNCandidates
from api.spaces.autoshrink_rnn.model import RNNModel
from tests.conftest import write_chain_corpus
from searching.fused.rnn_trainer import member_sgd_step, train_fused
from searching.rnn.proxy import LMData, RNNProxyEvaluator, RNNProxyTrainConfig

# float64 equivalence runs of the fused trainers: part of the full suite, not the inner loop
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]

PARENT = CellGraph.complete(5, ["input", "tanh", "relu", "identity", "sigmoid"], space="rnn")
# (0, 1) leaves node 1 unreachable (its out-edges stop counting); (1, 4) and (0, 4) change
# node 4's indegree; (2, 3) makes node 2 a second leaf.
EDGES = [(0, 1), (1, 4), (2, 3), (0, 4)]


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def test_member_losses_and_gradients_equal_their_own_models(float64):
    graphs = [PARENT.remove_edge(*e) for e in EDGES]
    V, E, T, B = 30, 6, 7, 4
    fused, nets = FusedRNNCandidates.from_members(
        PARENT, graphs, lambda g: RNNModel(g, V, E, E), seeds=[1, 2, 3, 4])
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([7, 3, 5, 1])
    inputs = torch.randint(0, V, (4, T, B), generator=gen)
    targets = torch.randint(0, V, (4, T, B), generator=gen)
    hidden = 0.1 * torch.randn(4, B, E, generator=gen)
    loss, new_hidden = fused.losses(inputs, targets, hidden, lengths)
    loss.sum().backward()
    for m, net in enumerate(nets):
        L = int(lengths[m])
        own, own_hidden = net.loss(inputs[m, :L], targets[m, :L], hidden[m])
        own.backward()
        assert loss[m].item() == pytest.approx(own.item(), rel=1e-12)
        assert torch.allclose(new_hidden[m], own_hidden, atol=1e-13)
        pairs = fused.member_grads(m, net)
        assert len(pairs) == 3 + 2 * len(graphs[m].edge_list)
        for mine, theirs in pairs:
            assert torch.allclose(mine, theirs, atol=1e-13)
    # weights of the edges a member lacks get exactly zero gradient: member 0 lost 0->1,
    # so node 1 is unreachable and its out-edges 1->2, 1->3 and 1->4 count for nothing
    src1 = [q for q, s in enumerate(fused.sources) if s.node == 1][0]
    assert fused.Ws[src1].grad[0].abs().max() == 0
    assert fused.Ws[src1].grad[1:].abs().max() > 0
    # a subset of members computes the same as the whole
    idx = torch.tensor([1, 3])
    sub, _ = fused.losses(inputs[idx], targets[idx], hidden[idx], lengths[idx], idx)
    assert torch.equal(sub, loss[idx])


def test_member_sgd_step_is_clip_then_sgd_per_member(float64):
    gen = torch.Generator().manual_seed(1)
    params = [torch.randn(3, 4, 5, generator=gen), torch.randn(3, 7, generator=gen)]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * torch.tensor([0.01, 1.0, 5.0]).view(
            (3,) + (1,) * (p.dim() - 1))
    before = [p.clone() for p in params]
    member_sgd_step(params, torch.tensor([0, 2]), torch.tensor([20.0, 10.0]), 0.25, 0.1)
    for m, lr in ((0, 20.0), (2, 10.0)):
        own = [b[m].clone().requires_grad_() for b in before]
        for o, p in zip(own, params):
            o.grad = p.grad[m].clone()
        torch.nn.utils.clip_grad_norm_(own, 0.25)
        torch.optim.SGD(own, lr=lr, weight_decay=0.1).step()
        for o, p in zip(own, params):
            assert torch.allclose(p[m], o, atol=1e-12)
    assert all(torch.equal(p[1], b[1]) for p, b in zip(params, before))  # not in the step


def _evaluator(tmp_path, **kw):
    root = write_chain_corpus(Path(tmp_path), 120, eval_lines=20, vocab=20, follow=0.7,
                              pad=True, seed=0)
    c = Corpus(str(root))
    data = LMData(c.train, c.valid, c.ntokens,
                  embedding_matrix(c.dictionary.idx2word, 8, None, 0).double())
    cfg = RNNProxyTrainConfig(**{"epochs": 6, "batch_size": 8, "eval_batch_size": 8, "bptt": 6, **kw})
    return RNNProxyEvaluator(data, 8, 8, cfg)


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_fused_training_equals_separate_training(tmp_path, float64, cuda_graphs):
    """Also through the fixed-shape step of --cuda_graphs (every member computed at every
    batch, windows padded to bptt; on the CPU it runs eagerly, the same maths)."""
    # short_prob 0.3: members draw different sequence lengths at most steps; patience 1:
    # they stop after 2, 3 and 6 epochs
    ev = _evaluator(tmp_path, short_prob=0.3, patience=1)
    graphs = [PARENT.remove_edge(*e) for e in EDGES]
    seeds = [11, 12, 13, 14]
    fused = train_fused(_evaluator(tmp_path / "g", short_prob=0.3, patience=1), PARENT,
                        graphs, seeds, cuda_graphs=cuda_graphs)
    assert len({r.epochs for r in fused}) >= 3
    for g, s, r in zip(graphs, seeds, fused):
        alone = ev.evaluate(g, s)
        assert r.ok and alone.ok
        assert (r.epochs, r.macs, r.params) == (alone.epochs, alone.macs, alone.params)
        assert r.metrics["perplexity"] == pytest.approx(alone.metrics["perplexity"], rel=1e-7)
        for a, b in zip(r.curve, alone.curve):
            assert a["lr"] == b["lr"]
            for k in ("train_loss", "val_loss", "val_ppl_original_eval"):
                assert a[k] == pytest.approx(b[k], rel=1e-7), k


def test_diverged_member_fails_alone(tmp_path, float64):
    """A member above the divergence threshold fails as its own training does; the others'
    results are untouched by it."""
    ev = _evaluator(tmp_path, epochs=2)
    graphs = [PARENT.remove_edge(*e) for e in EDGES[:2]]
    ok = train_fused(ev, PARENT, graphs, [3, 4])
    threshold = (ok[0].metrics["val_loss"] + ok[1].metrics["val_loss"]) / 2
    ev.config.diverge_loss = threshold
    mixed = train_fused(ev, PARENT, graphs, [3, 4])
    for r, plain in zip(mixed, ok):
        if plain.metrics["val_loss"] >= threshold:
            assert r.status == "failed" and "Diverged" in r.error and not r.fatal
        else:
            assert r.ok and r.metrics["val_loss"] == plain.metrics["val_loss"]
    assert sorted(r.ok for r in mixed) == [False, True]


# ------------------------------------------------------------- in a search (FusedExecutor)
from api.search.objectives import RNNObjective  # noqa: E402
from searching.fused.executor import FusedExecutor  # noqa: E402
from searching.shrink import ShrinkConfig, ShrinkSearch  # noqa: E402
from tests.searching.fused.test_fused_proxy import KilledMidStep, _journal, _same  # noqa: E402  (the CNN's helpers)


SEARCH_PARENT = CellGraph.complete(4, ["input", "tanh", "relu", "identity"], space="rnn")


def _search(root, ev, executor, resume=False):
    search = ShrinkSearch(str(root), ev, RNNObjective(1.0, min_flops=64.0),
                          ShrinkConfig(k=3, keep_fraction=0.5, seed=0), plots=False,
                          progress=False, executor=executor)
    if resume:
        search.resume()
    else:
        search.start(lambda rng: SEARCH_PARENT)
    return search.run()


def test_search_with_fused_executor_matches_and_resumes(tmp_path, float64):
    ev = _evaluator(tmp_path / "corpus", epochs=2, short_prob=0.3)
    plain = _search(tmp_path / "plain", ev, None)
    ex = FusedExecutor()
    fused = _search(tmp_path / "fused", ev, ex)
    assert ex.groups == [3, 3, 3]  # every step fused (its last prunes nodes: 4 edges -> 1)
    assert fused.same_structure(plain)
    _same(_journal(tmp_path / "fused"), _journal(tmp_path / "plain"))
    # killed in step 2 after one of its candidates was recorded, then resumed fused: the
    # remaining two train as a group of two, with the same results
    with pytest.raises(SystemExit):
        _search(tmp_path / "killed", ev, KilledMidStep(die_in_call=2))
    ex = FusedExecutor()
    resumed = _search(tmp_path / "killed", ev, ex, resume=True)
    assert ex.groups[0] == 2
    assert resumed.same_structure(plain)
    _same(_journal(tmp_path / "killed"), _journal(tmp_path / "plain"))


def test_cli_fused_flag(tmp_path, capsys):
    """--fused is off by default and a runtime flag; with it the CLI's steps run fused; with
    a dropout it falls back, saying so once."""
    from searching.rnn.autoshrink_rnn import RUNTIME_FLAGS, make_search
    from searching.rnn.train import build_parser
    from searching.runner import run_search
    root = write_chain_corpus(tmp_path / "c", 120, eval_lines=20, vocab=20, follow=0.7,
                              pad=True, seed=0)
    assert not build_parser().parse_args([]).fused and "fused" in RUNTIME_FLAGS
    common = ["--nodes", "3", "--data", str(root), "--emb_path", "none", "--emsize", "8",
              "--epochs", "1", "--batch_size", "8", "--eval_batch_size", "8", "--bptt", "6",
              "--max_steps", "2", "--quiet", "--no_plots", "--threads", "1", "--fused"]
    for save, extra, fused_groups in (("a", [], True), ("b", ["--dropouth", "0.1"], False)):
        args = build_parser().parse_args(common + ["--save", str(tmp_path / save), *extra])
        search = make_search(args)
        assert isinstance(search.executor, FusedExecutor)
        run_search(search, str(tmp_path / save))
        assert bool(search.executor.groups) == fused_groups
        assert (tmp_path / save / "graph-best.json").exists()
    assert capsys.readouterr().err.count("fused: training separately (fused RNN") == 1
    # --cuda_graphs: a runtime flag that needs --fused (it captures the fused step)
    assert "cuda_graphs" in RUNTIME_FLAGS
    from api.errors import UserError
    with pytest.raises(UserError, match="add --fused"):
        make_search(build_parser().parse_args(
            [a for a in common if a != "--fused"] + ["--save", str(tmp_path / "c"),
                                                    "--cuda_graphs"]))


def test_fused_executor_falls_back_when_the_group_runs_out_of_memory(monkeypatch, capsys):
    """k members in one model may not fit where one at a time does: that step trains
    separately (not k fatal failures), and the executor goes on fusing later steps."""
    import searching.fused.executor as fe
    from api.search.evaluator import Result, Task

    class Plain:
        threads = 1

        def evaluate(self, graph, seed):
            return Result(metrics={"perplexity": float(seed)})

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")

    monkeypatch.setattr(fe, "fused_trainer", lambda ev, graphs: (out_of_memory, ""))
    tasks = [Task(f"t{i}", PARENT.remove_edge(*e), i) for i, e in enumerate(EDGES)]
    ex = FusedExecutor()
    out = list(ex.run(Plain(), tasks))
    assert [r.metrics["perplexity"] for _, r in out] == [0.0, 1.0, 2.0, 3.0]
    assert ex.groups == []
    assert "ran out of GPU memory: CUDA out of memory" in capsys.readouterr().err
