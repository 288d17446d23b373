"""Train the reference RNN proxy candidate on penn_proxy and print its perplexity curve.

    python bench/rnn_proxy_ppl.py --data ../shared/data/penn_proxy [--emb_path w2v.pkl]
        [--seeds 0 1 2] [--drop_edge 0,5] [--threads 1]

The cell is the complete 6-node DAG with node ops identity, relu, tanh, identity, identity
(``--drop_edge 0,5`` removes one edge: the 14-edge candidate of SPEC section 15), trained with
the paper's proxy settings (10 epochs, lr 20, batch 128, bptt 35, clip 0.25). For each seed it
prints the per-epoch validation perplexity twice: the true token mean, and the figure the
original code would have logged (its validation loss is the true one times (rows-1)/rows:
see ``original_eval_factor``), then the unigram floor and the median over seeds.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from api.graph import CellGraph
from searching.rnn.autoshrink_rnn import LMData, RNNProxyEvaluator, RNNTrainConfig
from searching.rnn.data import Corpus, unigram_perplexity
from searching.rnn.utils import embedding_matrix, load_w2v

OPS = ["input", "identity", "relu", "tanh", "identity", "identity"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/penn_proxy")
    p.add_argument("--emb_path", default="none", help="w2v.pkl, or none: U(-0.5, 0.5)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--drop_edge", default=None, help="i,j: train the cell without this edge")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = Corpus(args.data)
    vectors = None if args.emb_path.lower() == "none" else load_w2v(args.emb_path)
    graph = CellGraph.complete(6, OPS, space="rnn")
    if args.drop_edge:
        graph = graph.remove_edge(*(int(v) for v in args.drop_edge.split(",")))
    cfg = RNNTrainConfig(epochs=args.epochs, device=args.device)
    best, best_orig, per_epoch = [], [], []
    for seed in args.seeds:
        emb = embedding_matrix(corpus.dictionary.idx2word, 100, vectors, seed)
        ev = RNNProxyEvaluator(LMData(corpus.train, corpus.valid, corpus.ntokens, emb),
                               100, 100, cfg)
        result = ev.evaluate(graph, seed)
        for row in result.curve:
            print(f"seed {seed} epoch {row['epoch']:2d} lr {row['lr']:6.2f} "
                  f"train_loss {row['train_loss']:.3f} val_ppl {row['val_ppl']:7.1f} "
                  f"(original's formula {row['val_ppl_original_eval']:6.1f}) "
                  f"t {row['seconds']:.0f}s")
        best.append(result.metrics["perplexity"])
        best_orig.append(result.metrics["perplexity_original_eval"])
        per_epoch.append(result.seconds / result.epochs)
    print(f"cell {graph.num_edges} edges, emb {args.emb_path}, threads {torch.get_num_threads()}, "
          f"unigram val ppl {unigram_perplexity(corpus.train, corpus.valid, corpus.ntokens):.0f}")
    print(f"best_val_ppl={statistics.median(best):.1f} "
          f"original_eval_ppl={statistics.median(best_orig):.1f} "
          f"s_per_epoch={statistics.median(per_epoch):.1f} seeds={len(args.seeds)}")


if __name__ == "__main__":
    main()
