"""Seconds per epoch of an RNN proxy candidate: this implementation versus the original's way.

    python bench/rnn_speed.py [--data ../shared/data/penn_proxy] [--batches 6] [--threads 1]

Both train the complete 6-node cell (node ops identity, relu, tanh, identity, identity) as
the paper's proxy LM (emsize = nhid = 100, batch 128, bptt 35, SGD lr 20, clip 0.25) on the
same batches. "original" is the computation of the original search code, kept here as the
baseline: one matmul per edge and step, autograd through every step, log-softmax + NLL.
"ours" is api/spaces/autoshrink_rnn/model.py. Both measure the same number of training batches and are
projected to a full epoch of penn_proxy; CPU seconds are printed next to wall seconds so a
busy machine can be told apart from a slow implementation.
"""
from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from api.spaces.dag.graph import CellGraph
from api.lm.data import Corpus, batchify, get_batch
from api.lm.embedding import embedding_matrix
from api.spaces.autoshrink_rnn.model import RNNModel
from rnn_reference import REFERENCE_OPS

OPS = list(REFERENCE_OPS)
ACT = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
       "identity": lambda v: v}


def original_loss(model: RNNModel, graph: CellGraph, x, y, h):
    """The original's forward: per-edge matmuls, states summed per node, log-softmax + NLL."""
    cell, H = model.cell, model.nhid
    emb = F.embedding(x, model.encoder.weight)
    outs = []
    for t in range(x.size(0)):
        c0, h0 = torch.split(torch.cat([emb[t], h], -1).mm(cell.W0), H, dim=-1)
        states = {0: h + c0.sigmoid() * (h0.tanh() - h)}
        count = {0: 1}
        for i in range(graph.num_nodes):
            if i not in states:
                continue
            s = states[i] / count[i]
            for j in range(i + 1, graph.num_nodes):
                if (i, j) not in set(graph.edge_list):
                    continue
                c, hh = torch.split(s.mm(cell.edge_weight(i, j)), H, dim=-1)
                contrib = s + c.sigmoid() * (ACT[graph.ops_def[j]](hh) - s)
                states[j] = states[j] + contrib if j in states else contrib
                count[j] = count.get(j, 0) + 1
        leaves = graph.leaves or [0]
        h = torch.stack([states[k] / count[k] for k in leaves], -1).mean(-1)
        outs.append(h)
    out = torch.stack(outs)
    logp = F.log_softmax(F.linear(out, model.encoder.weight, model.decoder_bias), -1)
    return F.nll_loss(logp.view(-1, logp.size(-1)), y.reshape(-1)), h


def measure(kind: str, corpus: Corpus, batches: int, seed: int = 0):
    graph = CellGraph.complete(6, OPS, space="rnn")
    torch.manual_seed(seed)
    emb = embedding_matrix(corpus.dictionary.idx2word, 100, None, seed)
    model = RNNModel(graph, corpus.ntokens, 100, embedding=emb)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=20.0)
    train = batchify(corpus.train, 128)
    hidden = model.init_hidden(128)
    losses, wall, cpu = [], 0.0, 0.0
    for b in range(batches + 1):  # the first batch warms up and is not timed
        x, y = get_batch(train, (b * 35) % (train.size(0) - 36), 35)
        t0, c0 = time.perf_counter(), time.process_time()
        if kind == "ours":
            loss, hidden = model.loss(x, y, hidden.detach())
        else:
            loss, hidden = original_loss(model, graph, x, y, hidden.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.25)
        opt.step()
        if b:
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
        losses.append(loss.item())
    per_epoch = (train.size(0) - 1) / 35 / batches
    return wall * per_epoch, cpu * per_epoch, losses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/penn_proxy")
    p.add_argument("--batches", type=int, default=6, help="timed training batches per variant")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = Corpus(args.data)
    results = {k: measure(k, corpus, args.batches) for k in ("ours", "original")}
    for kind, (wall, cpu, losses) in results.items():
        print(f"{kind:8s}: {wall:6.1f} s/epoch wall, {cpu:6.1f} s/epoch CPU "
              f"(first losses {', '.join(f'{v:.4f}' for v in losses[:3])})")
    speedup = results["original"][1] / results["ours"][1]
    print(f"threads={torch.get_num_threads()} speedup (CPU time) {speedup:.2f}x; same losses: "
          f"{all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(results['ours'][2], results['original'][2]))}")


if __name__ == "__main__":
    main()
