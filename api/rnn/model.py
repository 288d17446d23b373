"""The AutoShrink RNN cell's language model (search proxy and final training): embedding ->
DAG cell -> tied decoder.

The cell (SPEC section 6) runs through :mod:`api.rnn.recurrence` (one autograd
Function with a hand-written backward) and the decoder loss through
:mod:`api.rnn.softmax_loss` (fused tied-decoder cross-entropy); this module holds the
parameters and the DARTS dropouts. ``tests/test_rnn_model.py`` checks both against plain
per-edge autograd code.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from api.errors import UserError
from api.graph import CellGraph
from api.rnn.dropout import embedded_dropout, locked_dropout, mask2d
from api.rnn.recurrence import CellPlan, dag_cell
from api.rnn.softmax_loss import linear_cross_entropy

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


class RNNModel(nn.Module):
    """Embedding -> DAG cell -> tied decoder (a language model over ``ntoken`` words).

    Dropouts follow DARTS (``dropout`` output, ``dropouth``/``dropoutx`` the cell's h and x
    masks, ``dropouti`` embedding output, ``dropoute`` whole words); all 0 during search.
    """

    def __init__(self, graph: CellGraph, ntoken: int, ninp: int, nhid: Optional[int] = None,
                 embedding: Optional[torch.Tensor] = None, dropout: float = 0.0,
                 dropouth: float = 0.0, dropoutx: float = 0.0, dropouti: float = 0.0,
                 dropoute: float = 0.0) -> None:
        super().__init__()
        nhid = ninp if nhid is None else nhid
        if nhid != ninp:
            raise UserError(f"the decoder is tied to the embedding: --nhid ({nhid}) and "
                            f"--nhidlast must equal --emsize ({ninp})")
        self.ntoken, self.ninp, self.nhid = ntoken, ninp, nhid
        self.dropout, self.dropouth, self.dropoutx = dropout, dropouth, dropoutx
        self.dropouti, self.dropoute = dropouti, dropoute
        self.encoder = nn.Embedding(ntoken, ninp)
        self.cell = DagCell(graph, ninp, nhid)
        self.decoder_bias = nn.Parameter(torch.zeros(ntoken))
        with torch.no_grad():
            if embedding is not None:
                if tuple(embedding.shape) != (ntoken, ninp):
                    raise UserError(f"embedding matrix has shape {tuple(embedding.shape)}, "
                                    f"expected ({ntoken}, {ninp})")
                self.encoder.weight.copy_(embedding)
            else:
                self.encoder.weight.uniform_(-EMB_INITRANGE, EMB_INITRANGE)

    @property
    def decoder_weight(self) -> torch.Tensor:
        return self.encoder.weight  # tied

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return self.decoder_weight.new_zeros(batch_size, self.nhid)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor,
                generator: Optional[torch.Generator] = None):
        """(T, B) word ids -> (cell outputs (T, B, H) after output dropout, new hidden)."""
        out, _raw, new_hidden = self.forward_raw(inputs, hidden, generator)
        return out, new_hidden

    def forward_raw(self, inputs: torch.Tensor, hidden: torch.Tensor,
                    generator: Optional[torch.Generator] = None):
        """As ``forward``, also returning the raw (pre-dropout) cell outputs that the final
        training's temporal activation regularisation (TAR) needs."""
        train = self.training
        emb = embedded_dropout(self.encoder.weight, inputs, self.dropoute if train else 0.0,
                               generator)
        emb = locked_dropout(emb, self.dropouti if train else 0.0, generator)
        x_mask = h_mask = None
        if train and self.dropoutx:
            x_mask = mask2d(inputs.size(1), self.ninp, 1.0 - self.dropoutx, emb.device, generator)
        if train and self.dropouth:
            h_mask = mask2d(inputs.size(1), self.nhid, 1.0 - self.dropouth, emb.device, generator)
        raw, new_hidden = self.cell(emb, hidden, x_mask, h_mask)
        out = locked_dropout(raw, self.dropout if train else 0.0, generator)
        return out, raw, new_hidden

    def log_prob(self, output: torch.Tensor) -> torch.Tensor:
        """Log-softmax over the vocabulary of cell outputs (T, B, H) -> (T, B, ntoken)."""
        logits = torch.nn.functional.linear(output, self.decoder_weight, self.decoder_bias)
        return torch.log_softmax(logits, dim=-1)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor,
             generator: Optional[torch.Generator] = None):
        """Mean next-word cross-entropy of a (T, B) batch, and the new hidden state."""
        out, new_hidden = self(inputs, hidden, generator)
        loss = linear_cross_entropy(out.reshape(-1, self.nhid), self.decoder_weight,
                                    self.decoder_bias, targets.reshape(-1))
        return loss, new_hidden


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cell_flops(graph: CellGraph, nhid: int) -> float:
    """The paper's FLOPs proxy of a cell: counted edges x nhid^2."""
    return float(graph.num_edges * nhid * nhid)


__all__ = ["CellPlan", "DagCell", "RNNModel", "linear_cross_entropy", "cell_flops", "INITRANGE"]
