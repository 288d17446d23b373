"""A hand-written static ShrinkRNN cell, for the overhead benchmark (bench/overhead.py).

The 6-node ShrinkRNN cell (edges 0->1..5, 1->3,4,5, 2->4,5, 3->4,5; ops identity, sigmoid,
sigmoid, tanh, identity for nodes 1-5; leaves 4 and 5) unrolled by hand with one matmul per
edge and plain autograd, inside the same LM (embedding -> cell -> tied decoder -> CE) as
``api.spaces.autoshrink_rnn.model.RNNModel``, so the benchmark measures what building the cell from a
graph costs (or saves).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.dag.graph_io import load_graph
from api.spaces.autoshrink_rnn.model import RNNModel

EDGES = [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 3), (1, 4), (1, 5), (2, 4), (2, 5),
         (3, 4), (3, 5)]
ACT = {1: lambda v: v, 2: torch.sigmoid, 3: torch.sigmoid, 4: torch.tanh, 5: lambda v: v}


class StaticShrinkRNN(nn.Module):
    def __init__(self, ntoken: int, nhid: int) -> None:
        super().__init__()
        self.nhid = nhid
        self.encoder = nn.Embedding(ntoken, nhid)
        self.W0 = nn.Parameter(torch.empty(2 * nhid, 2 * nhid).uniform_(-0.04, 0.04))
        self.W = nn.ParameterDict({f"{i}{j}": nn.Parameter(
            torch.empty(nhid, 2 * nhid).uniform_(-0.04, 0.04)) for i, j in EDGES})
        self.bias = nn.Parameter(torch.zeros(ntoken))

    def step(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        c0, h0 = (torch.cat([x, h], 1) @ self.W0).chunk(2, 1)
        s = {0: h + torch.sigmoid(c0) * (torch.tanh(h0) - h)}
        for j in range(1, 6):
            parts = []
            for i in [i for i, jj in EDGES if jj == j]:
                c, hh = (s[i] @ self.W[f"{i}{j}"]).chunk(2, 1)
                parts.append(s[i] + torch.sigmoid(c) * (ACT[j](hh) - s[i]))
            s[j] = torch.stack(parts).mean(0)
        return (s[4] + s[5]) / 2

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor):
        emb = self.encoder(inputs)
        outs = []
        for t in range(inputs.size(0)):
            hidden = self.step(emb[t], hidden)
            outs.append(hidden)
        out = torch.stack(outs)
        logits = F.linear(out.reshape(-1, self.nhid), self.encoder.weight, self.bias)
        return F.cross_entropy(logits, targets.reshape(-1)), hidden


def rnn_models(nhid: int = 100, ntoken: int = 1000, batch: int = 64, bptt: int = 35):
    """(graph-built LM, static LM, batch maker, loss fn) with equal parameter counts."""
    built = RNNModel(load_graph("shrinkrnn"), ntoken, nhid, nhid)
    static = StaticShrinkRNN(ntoken, nhid)
    n_built = sum(p.numel() for p in built.parameters())
    n_static = sum(p.numel() for p in static.parameters())
    assert n_built == n_static, (n_built, n_static)

    def make_batch():
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, ntoken, (bptt + 1, batch), generator=g)
        return x[:-1], x[1:]

    def loss(model, x, y):
        return model.loss(x, y, torch.zeros(batch, nhid))[0]

    return built, static, make_batch, loss
