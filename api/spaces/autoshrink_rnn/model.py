"""The AutoShrink RNN cell's language model (search proxy and final training): embedding ->
DAG cell -> tied decoder.

The cell runs through :mod:`api.spaces.autoshrink_rnn.recurrence` (one autograd
Function with a hand-written backward) and the decoder loss through
:mod:`api.lm.softmax_loss` (fused tied-decoder cross-entropy); this module holds the
cell's parameters, and :class:`api.lm.tied_lm.TiedEmbeddingLM` (shared with the DARTS/ENAS
cell's LM) the embedding, the DARTS dropouts and the tied decoder. ``tests/test_rnn_model.py``
checks both against plain per-edge autograd code.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_rnn.recurrence import CellPlan, dag_cell
from api.lm.softmax_loss import linear_cross_entropy
from api.lm.tied_lm import TiedEmbeddingLM

INITRANGE = 0.04  # cell weights ~ U(-0.04, 0.04), as DARTS and the original
EMB_INITRANGE = 0.1


class DagCell(nn.Module):
    """The recurrent DAG cell of one CellGraph; ``forward(x (T,B,ninp), h (B,H))``."""

    def __init__(self, graph: CellGraph, ninp: int, nhid: int) -> None:
        super().__init__()
        self.ninp, self.nhid = ninp, nhid
        self.plan = CellPlan.from_graph(graph, nhid)
        self.W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE))
        self.Ws = nn.ParameterDict({
            f"{i}_{j}": nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE))
            for i, j in self.plan.edges})

    def edge_weight(self, i: int, j: int) -> torch.Tensor:
        return self.Ws[f"{i}_{j}"]

    def forward(self, x: torch.Tensor, h: torch.Tensor, x_mask: Optional[torch.Tensor] = None,
                h_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        T, B, _ = x.shape
        if x_mask is not None:
            x = x * x_mask
        xproj = (x.reshape(T * B, self.ninp) @ self.W0[:self.ninp]).view(T, B, 2 * self.nhid)
        weights = [self.edge_weight(i, j) for i, j in self.plan.edges]
        out = dag_cell(self.plan, xproj, h, h_mask, self.W0[self.ninp:], weights)
        return out, out[-1]


class RNNModel(TiedEmbeddingLM):
    """Embedding -> DAG cell -> tied decoder (a language model over ``ntoken`` words).

    Dropouts follow DARTS (``dropout`` output, ``dropouth``/``dropoutx`` the cell's h and x
    masks, ``dropouti`` embedding output, ``dropoute`` whole words); all 0 during search.
    Forward pass, log-probabilities and loss: :class:`api.lm.tied_lm.TiedEmbeddingLM`.
    """

    def __init__(self, graph: CellGraph, ntoken: int, ninp: int, nhid: Optional[int] = None,
                 embedding: Optional[torch.Tensor] = None, dropout: float = 0.0,
                 dropouth: float = 0.0, dropoutx: float = 0.0, dropouti: float = 0.0,
                 dropoute: float = 0.0) -> None:
        nhid = ninp if nhid is None else nhid
        if nhid != ninp:
            raise UserError(f"the decoder is tied to the embedding: --nhid ({nhid}) and "
                            f"--nhidlast must equal --emsize ({ninp})")
        super().__init__(ntoken, ninp, nhid, dropout, dropouth, dropoutx, dropouti, dropoute)
        self.cell = DagCell(graph, ninp, nhid)
        self.decoder_bias = nn.Parameter(torch.zeros(ntoken))
        self._init_embedding(embedding, EMB_INITRANGE)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cell_flops(graph: CellGraph, nhid: int) -> float:
    """The paper's FLOPs proxy of a cell: counted edges x nhid^2."""
    return float(graph.num_edges * nhid * nhid)


__all__ = ["CellPlan", "DagCell", "RNNModel", "linear_cross_entropy", "cell_flops", "INITRANGE"]
