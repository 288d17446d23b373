"""Train the reference RNN proxy candidate on penn_proxy and print its perplexity curve.

    python bench/rnn_proxy_ppl.py --data ../shared/data/penn_proxy [--emb_path w2v.pkl]
        [--seeds 0 1 2] [--drop_edge 0,5] [--threads 1]

The cell is the complete 6-node DAG with node ops identity, relu, tanh, identity, identity
(``--drop_edge 0,5`` removes one edge: the 14-edge reference candidate), trained with
the paper's proxy settings (10 epochs, lr 20, batch 128, bptt 35, clip 0.25). For each seed it
prints the per-epoch validation perplexity twice: the true token mean, and the figure the
original code would have logged (its validation loss is the true one times (rows-1)/rows:
see ``original_eval_factor``), then the unigram floor and the median over seeds.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Optional, Sequence

import torch

from api.errors import UserError, run_cli
from api.lm.data import Corpus, unigram_perplexity
from rnn_reference import reference_candidate


def parse_edge(text: str):
    """``i,j`` with 0 <= i < j <= 5: an edge of the 6-node reference cell."""
    try:
        i, j = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--drop_edge {text!r}: expected i,j (e.g. 0,5)") from None
    if not 0 <= i < j <= 5:
        raise UserError(f"--drop_edge {text!r}: the 6-node cell's edges are i,j with "
                        "0 <= i < j <= 5")
    return i, j


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/penn_proxy")
    p.add_argument("--emb_path", default="none", help="w2v.pkl, or none: U(-0.5, 0.5)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--drop_edge", default=None, help="i,j: train the cell without this edge")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    drop_edge = parse_edge(args.drop_edge) if args.drop_edge else None
    emb_path = None if args.emb_path.lower() == "none" else args.emb_path
    best, best_orig, per_epoch = [], [], []
    for seed in args.seeds:
        result = reference_candidate(args.data, args.epochs, args.device, emb_path, seed,
                                     drop_edge)
        for row in result.curve:
            print(f"seed {seed} epoch {row['epoch']:2d} lr {row['lr']:6.2f} "
                  f"train_loss {row['train_loss']:.3f} val_ppl {row['val_ppl']:7.1f} "
                  f"(original's formula {row['val_ppl_original_eval']:6.1f}) "
                  f"t {row['seconds']:.0f}s")
        best.append(result.metrics["perplexity"])
        best_orig.append(result.metrics["perplexity_original_eval"])
        per_epoch.append(result.seconds / result.epochs)
    corpus = Corpus(args.data)
    cell = "complete" if drop_edge is None else f"without {drop_edge[0]}->{drop_edge[1]}"
    print(f"cell {cell}, emb {args.emb_path}, "
          f"threads {torch.get_num_threads()}, "
          f"unigram val ppl {unigram_perplexity(corpus.train, corpus.valid, corpus.ntokens):.0f}")
    print(f"best_val_ppl={statistics.median(best):.1f} "
          f"original_eval_ppl={statistics.median(best_orig):.1f} "
          f"s_per_epoch={statistics.median(per_epoch):.1f} seeds={len(args.seeds)}")


if __name__ == "__main__":
    run_cli(main)
