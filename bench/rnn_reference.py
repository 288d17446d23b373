"""The reference RNN proxy candidate of the benchmarks, trained once.

Used by ``bench/candidate.py`` (seconds per candidate), ``bench/rnn_proxy_ppl.py`` (its
perplexity curve) and ``bench/rnn_speed.py`` (its node ops). Importable from the bench
scripts (their folder is first on ``sys.path`` when run as ``python bench/<script>.py``).
"""
from __future__ import annotations

from typing import Optional, Tuple

from api.spaces.dag.graph import CellGraph
from api.lm.data import Corpus
from api.lm.embedding import embedding_matrix, load_w2v
from api.search.evaluator import Result
from searching.rnn.proxy import LMData, RNNProxyEvaluator, RNNProxyTrainConfig

# The reference cell of the benchmarks: 6 nodes, these node ops.
REFERENCE_OPS = ("input", "identity", "relu", "tanh", "identity", "identity")


def reference_evaluator(data_dir: str, epochs: int = 10, device: str = "auto",
                        emb_path: Optional[str] = None, seed: int = 0) -> RNNProxyEvaluator:
    """The proxy evaluator of the reference candidates: a PTB-format corpus at the paper's
    proxy settings (emsize = nhid = 100); ``seed`` seeds the embedding init."""
    corpus = Corpus(data_dir)
    vectors = load_w2v(emb_path) if emb_path else None
    emb = embedding_matrix(corpus.dictionary.idx2word, 100, vectors, seed)
    data = LMData(corpus.train, corpus.valid, corpus.ntokens, emb)
    return RNNProxyEvaluator(data, 100, 100, RNNProxyTrainConfig(epochs=epochs, device=device))


def reference_graph() -> CellGraph:
    return CellGraph.complete(6, list(REFERENCE_OPS), space="rnn")


def reference_candidate(data_dir: str, epochs: int = 10, device: str = "auto",
                        emb_path: Optional[str] = None, seed: int = 0,
                        drop_edge: Optional[Tuple[int, int]] = (0, 5)) -> Result:
    """Train the reference cell (complete, minus ``drop_edge`` unless None) on a PTB-format
    corpus at the paper's proxy settings; ``seed`` seeds the embedding init and training."""
    ev = reference_evaluator(data_dir, epochs, device, emb_path, seed)
    graph = reference_graph()
    if drop_edge is not None:
        graph = graph.remove_edge(*drop_edge)
    return ev.evaluate(graph, seed)


def bench_candidate(data_dir: str, max_epochs: int = 10, device: str = "auto",
                    emb_path: Optional[str] = None, seed: int = 0) -> Tuple[float, bool, Result]:
    """Seconds of one reference candidate (bench/candidate.py): the reference cell minus edge
    0->5 (14 edges), penn_proxy, paper settings. A run capped below 10 epochs is projected to
    10 from its s/epoch."""
    epochs = min(10, max_epochs)
    result = reference_candidate(data_dir, epochs, device, emb_path, seed)
    projected = result.epochs == epochs < 10
    seconds = result.seconds / result.epochs * 10 if projected else result.seconds
    return seconds, projected, result


__all__ = ["REFERENCE_OPS", "bench_candidate", "reference_candidate",
           "reference_evaluator", "reference_graph"]
