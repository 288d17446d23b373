"""The RNN proxy evaluator, the RNN search and its CLI (tiny synthetic corpora, CPU)."""
import json
import math
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from api.runs.atomic_io import read_jsonl
from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.search.objectives import RNNObjective
from tests.conftest import (die_at_every_kind_of_point, kill_9_when, run_cli_inprocess,
                      write_chain_corpus)
from api.lm.data import Corpus
from api.lm.embedding import embedding_matrix
from searching.rnn.proxy import Diverged, LMData, RNNProxyEvaluator, RNNProxyTrainConfig
from searching.rnn.train import main as train_main
from searching.shrink import ShrinkConfig, ShrinkSearch

from tests.conftest import REPO  # noqa: E402
PENN_PROXY = REPO.parent / "shared" / "data" / "penn_proxy"
OPS = ["input", "identity", "relu", "tanh"]


def write_corpus(root: Path, lines: int = 120, seed: int = 0) -> Path:
    """A tiny PTB-format corpus with some structure (word i+1 often follows word i)."""
    return write_chain_corpus(root, lines, eval_lines=20, vocab=20, follow=0.7, pad=True,
                              seed=seed)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("ptb"))


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**kw) -> RNNProxyTrainConfig:
    return replace(RNNProxyTrainConfig(epochs=2, batch_size=8, eval_batch_size=8, bptt=6), **kw)


def make_evaluator(corpus_dir, emsize=8, **kw) -> RNNProxyEvaluator:
    c = Corpus(str(corpus_dir))
    data = LMData(c.train, c.valid, c.ntokens,
                  embedding_matrix(c.dictionary.idx2word, emsize, None, 0))
    return RNNProxyEvaluator(data, emsize, emsize, tiny_config(**kw))


def test_lr_drops_only_after_epoch_zero():
    drops = {e: [i for i in range(e) if RNNProxyTrainConfig(epochs=e).lr_drops_after(i)]
             for e in (1, 2, 3, 4, 10)}
    assert drops == {1: [], 2: [], 3: [1], 4: [2], 10: [6, 8]}


def test_evaluator_measures_perplexity_and_flops_deterministically(corpus_dir):
    ev = make_evaluator(corpus_dir)
    graph = CellGraph.complete(4, OPS, space="rnn").remove_edge(0, 3)
    a, b = ev.evaluate(graph, seed=5), ev.evaluate(graph, seed=5)
    assert a.ok and a.metrics == b.metrics and a.curve[-1]["val_loss"] == b.curve[-1]["val_loss"]
    assert a.metrics["perplexity"] == pytest.approx(math.exp(a.metrics["val_loss"]))
    assert a.metrics["perplexity"] < ev.data.ntokens  # better than uniform
    assert a.macs == graph.num_edges * 8 ** 2  # the paper's FLOPs proxy
    assert a.epochs == 2 and len(a.curve) == 2
    assert ev.evaluate(graph, seed=6).metrics != a.metrics
    assert RNNObjective()(a) == pytest.approx(
        (200 - a.metrics["perplexity"]) * 0.25 - (math.log10(a.macs) - 6))
    empty = CellGraph(np.zeros((4, 4), dtype=int), OPS, space="rnn")
    assert ev.evaluate(empty, seed=0).ok  # the empty cell trains too
    restored = pickle.loads(pickle.dumps(ev))  # evaluators go to worker processes
    assert restored.evaluate(graph, seed=5).metrics == a.metrics


class DivergesWithout(RNNProxyEvaluator):
    """Trains candidates missing ``edge`` with an absurd learning rate."""

    edge = (0, 1)

    def evaluate(self, graph, seed):
        if not graph.mask[self.edge]:
            original = self.config
            self.config = replace(original, lr=1e12)
            try:
                return super().evaluate(graph, seed)
            finally:
                self.config = original
        return super().evaluate(graph, seed)


def test_diverging_candidate_is_failed_and_never_chosen(corpus_dir, tmp_path):
    base = make_evaluator(corpus_dir)
    ev = DivergesWithout(base.data, 8, 8, base.config)
    with pytest.raises(Diverged, match="diverged|validation loss"):
        ev.evaluate(CellGraph.complete(3, OPS[:3], space="rnn").remove_edge(0, 1), 0)
    search = ShrinkSearch(str(tmp_path / "s"), ev, RNNObjective(),
                          ShrinkConfig(k=3, keep_fraction=0.5, seed=0), plots=False,
                          progress=False)
    search.start(lambda rng: CellGraph.complete(3, OPS[:3], space="rnn"))
    best = search.run()
    recs = read_jsonl(tmp_path / "s" / "candidates.jsonl")
    failed = [r for r in recs if r["status"] == "failed"]
    assert len(recs) == 3 and len(failed) == 1
    assert failed[0]["edge"] == [0, 1] and failed[0]["score"] is None
    assert "Diverged" in failed[0]["error"]
    assert search.state["history"][0]["removed_edge"] != [0, 1]
    assert best.mask[0, 1] == 1


def test_divergence_is_judged_on_the_best_validation_loss(corpus_dir):
    """The original's rule: a candidate fails when its best validation loss is still at or
    above the threshold after training (a transient training spike is not a failure)."""
    graph = CellGraph.complete(3, OPS[:3], space="rnn")
    assert make_evaluator(corpus_dir).evaluate(graph, 0).ok
    strict = make_evaluator(corpus_dir, diverge_loss=0.5)  # no tiny LM gets below 0.5 nats
    with pytest.raises(Diverged, match="best validation loss"):
        strict.evaluate(graph, 0)


def test_original_eval_factor_reproduces_the_original_validation_formula(corpus_dir):
    """The original logged sum(window mean loss x window length) / rows; we log the true
    token mean and convert with original_eval_factor."""
    import torch

    from api.lm.data import batchify, get_batch
    from searching.rnn.proxy import original_eval_factor

    ev = make_evaluator(corpus_dir, eval_batch_size=4, bptt=5)
    model = ev.build(CellGraph.complete(3, OPS[:3], space="rnn")).eval()
    valid = batchify(ev.data.valid, 4)
    ours = ev.evaluate_loss(model, valid)
    total, hidden = 0.0, model.init_hidden(4)
    with torch.no_grad():
        for i in range(0, valid.size(0) - 1, 5):
            x, y = get_batch(valid, i, 5)
            loss, hidden = model.loss(x, y, hidden)
            total += float(loss) * len(x)
    assert total / len(valid) == pytest.approx(ours * original_eval_factor(len(valid)), rel=1e-5)
    assert original_eval_factor(27) == pytest.approx(26 / 27)  # penn_proxy at eval batch 256
    result = ev.evaluate(CellGraph.complete(3, OPS[:3], space="rnn"), 0)
    assert result.metrics["perplexity_original_eval"] < result.metrics["perplexity"]


def cli_args(corpus_dir, save, *extra):
    return ["--nodes", "3", "--data", str(corpus_dir), "--emb_path", "none", "--emsize", "8",
            "--epochs", "1", "--batch_size", "8", "--eval_batch_size", "8", "--bptt", "6",
            "--max_steps", "2", "--save", str(save), "--quiet", "--no_plots", "--threads", "1",
            *extra]  # (--threads 1: on two shared cores, 10x faster than two threads)


def journal(root):
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in read_jsonl(Path(root) / "candidates.jsonl")]


def test_same_seed_same_search(corpus_dir, tmp_path):
    train_main(cli_args(corpus_dir, tmp_path / "a", "--seed", "3"))
    train_main(cli_args(corpus_dir, tmp_path / "b", "--seed", "3"))
    assert journal(tmp_path / "a") == journal(tmp_path / "b")
    best = [json.loads((tmp_path / r / "graph-best.json").read_text()) for r in "ab"]
    for g in best:
        g["meta"].pop("seconds")
    assert best[0] == best[1]
    train_main(cli_args(corpus_dir, tmp_path / "a", "--seed", "3", "--resume"))  # done: no-op
    with pytest.raises(UserError, match="--lr"):
        train_main(cli_args(corpus_dir, tmp_path / "a", "--seed", "3", "--resume", "--lr", "5"))


def test_fixed_ops(corpus_dir, tmp_path):
    train_main(cli_args(corpus_dir, tmp_path / "o", "--ops", "identity,relu",
                        "--max_steps", "1", "--keep_fraction", "0.5"))
    g = json.loads((tmp_path / "o" / "graph-best.json").read_text())
    assert g["ops_def"][1:] == ["identity", "relu"] and g["space"] == "rnn"


def test_bad_input_is_one_clear_line(corpus_dir, tmp_path):
    cases = {
        ("--data", str(tmp_path / "nowhere")): "corpus folder not found",
        ("--emb_path", str(tmp_path / "w2v.pkl")): "python searching/rnn/preprocess.py",
        ("--nhidlast", "16"): "must equal --emsize",
        ("--ops", "tanh,swish"): "unknown op",
        ("--ops", "tanh"): "needs 2",
        ("--nodes", "1"): "--nodes must be at least 2",
        ("--lr", "0"): "--lr must be positive",
    }
    for extra, message in cases.items():
        with pytest.raises(UserError, match=message):
            train_main(cli_args(corpus_dir, tmp_path / "x", *extra))
    not_w2v = tmp_path / "graph.pkl"
    not_w2v.write_bytes(pickle.dumps(CellGraph.complete(3, OPS[:3])))
    with pytest.raises(UserError, match="not a w2v pickle"):
        train_main(cli_args(corpus_dir, tmp_path / "x", "--emb_path", str(not_w2v)))
    wrong_size = tmp_path / "w16.pkl"
    wrong_size.write_bytes(pickle.dumps({"w1": [0.0] * 16}))
    with pytest.raises(UserError, match="16-dimensional vectors but --emsize is 8"):
        train_main(cli_args(corpus_dir, tmp_path / "x", "--emb_path", str(wrong_size)))


def run_cli_script(*args, timeout=240):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(REPO / "searching/rnn/train.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_cli_smoke(corpus_dir, tmp_path, capsys):
    """The script's one subprocess run; its bad input runs in-process."""
    from searching.rnn.preprocess import main as preprocess_main

    w2v = tmp_path / "w2v.pkl"
    preprocess_main(["--data", str(corpus_dir), "--emsize", "8", "--out", str(w2v)])
    save = tmp_path / "run"
    args = cli_args(corpus_dir, save)
    args[args.index("--emb_path") + 1] = str(w2v)
    args.remove("--no_plots")
    proc = run_cli_script(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "graph-best" in proc.stdout
    for name in ("graph-best", "graph-best.json", "graph-best.png", "candidates.jsonl",
                 "best_perf.log", "perf.log", "mean_acc.log", "best_acc.log",
                 "mean_latency.log", "best_perf_log.png", "perf_log.png", "mean_acc.png",
                 "best_acc.png", "mean_latency.png", "search.log", "args.json"):
        assert (save / name).is_file(), name
    recs = read_jsonl(save / "candidates.jsonl")
    assert len(recs) == 2 + 2 and all("perplexity" in r for r in recs)  # 3 -> 2 -> 1 edges
    with open(save / "graph-best", "rb") as f:
        g = pickle.load(f)
    assert g.mask.shape == (3, 3) and len(g.ops_def) == 3 and g.perplexity > 1
    code, _, err = run_cli_inprocess(train_main, cli_args(
        corpus_dir, tmp_path / "y", "--emb_path", str(tmp_path / "missing.pkl")), capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and "preprocess.py" in err


def test_real_penn_proxy_candidate_learns():
    if not (PENN_PROXY / "train.txt").is_file():
        pytest.skip(f"penn_proxy not present at {PENN_PROXY}")
    c = Corpus(str(PENN_PROXY))
    data = LMData(c.train[:128 * 36 + 1], c.valid, c.ntokens,
                  embedding_matrix(c.dictionary.idx2word, 32, None, 0))
    ev = RNNProxyEvaluator(data, 32, 32, RNNProxyTrainConfig(epochs=1))
    result = ev.evaluate(CellGraph.complete(4, OPS, space="rnn"), seed=0)
    assert result.ok and 100 < result.metrics["perplexity"] < c.ntokens


RESUMABLE = ("--nodes", "4")  # 6 edges -> 2: 4 steps of 2 candidates


@pytest.fixture(scope="module")
def uninterrupted(corpus_dir, tmp_path_factory) -> Path:
    ref = tmp_path_factory.mktemp("uninterrupted")
    train_main(cli_args(corpus_dir, ref, *RESUMABLE))
    return ref


def resume_to_the_end(args, capsys):
    code, _, err = run_cli_inprocess(train_main, [*args, "--resume"], capsys)
    assert code == 0, err


def assert_same_search(save, ref):
    assert journal(save) == journal(ref)
    a = json.loads((save / "graph-best.json").read_text())
    b = json.loads((ref / "graph-best.json").read_text())
    assert a["mask"] == b["mask"] and a["meta"]["score"] == b["meta"]["score"]


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted(corpus_dir, tmp_path, uninterrupted, capsys):
    """An RNN search killed with SIGKILL mid-search resumes to the uninterrupted result."""
    save = tmp_path / "killed"
    args = cli_args(corpus_dir, save, *RESUMABLE)
    # killed early (8 fast candidates): the widest window for the kill to land mid-search
    kill_9_when("searching/rnn/train.py", args, save / "candidates.jsonl", lines=2)
    i = args.index("--threads")
    resume_to_the_end(args[:i] + args[i + 2:], capsys)  # keeps the saved --threads
    assert_same_search(save, uninterrupted)


def test_deaths_at_every_kind_of_point_then_resume_match_uninterrupted(
        corpus_dir, tmp_path, uninterrupted, capsys, monkeypatch):
    """Killed (deterministically, by the search's fault-injection hook) mid-step, right after
    a journal append but before its state save, between steps and right after a step's plan:
    each resume continues the last, and the end is exactly the uninterrupted run."""
    save = tmp_path / "killed"
    args = cli_args(corpus_dir, save, *RESUMABLE)
    die_at_every_kind_of_point(train_main, args, save, capsys, monkeypatch)
    resume_to_the_end(args, capsys)
    assert_same_search(save, uninterrupted)
