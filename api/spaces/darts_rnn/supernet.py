"""The DARTS RNN search supernet (Liu et al., ICLR 2019; official ``rnn/model_search.py``).

A :class:`~api.lm.tied_lm.TiedEmbeddingLM` (embedding -> cell -> tied decoder, DARTS's
dropouts) whose cell is DARTS's search cell: a batch-normalised first state s0, then nodes
1..8, each the softmax(alpha)-weighted sum over its incoming edges and the 5 ops of highway
updates through the node's own W_i, batch-normalised; the output (= next hidden state) is the
mean of nodes 1..8. ``alpha`` (36 edges x 5 ops) is the architecture parameter; the per-op sum
is folded into one expression with the same value as DARTS's loop.
:meth:`DartsRNNSupernet.derive` is DARTS's rule, ``concat = range(1, 9)``.

Fidelity notes: docs/fidelity/darts.md.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from api.errors import UserError
from api.lm.tied_lm import TiedEmbeddingLM
from api.spaces.darts_rnn.genotype import PRIMITIVES, STEPS, Genotype
from api.spaces.darts_rnn.model import INITRANGE, _act
from api.spaces.supernet import Supernet

#: DARTS ``rnn/train_search.py`` defaults: sizes and dropouts of the search model.
DARTS_SEARCH = {"emsize": 300, "nhid": 300, "dropout": 0.75, "dropouth": 0.25,
                "dropoutx": 0.75, "dropouti": 0.2, "dropoute": 0.0}


class SearchCell(nn.Module):
    """DARTS's mixed recurrent cell (see the module doc); ``probs`` (edges, ops) is set by
    the supernet for each forward."""

    def __init__(self, ninp: int, nhid: int, steps: int = STEPS) -> None:
        super().__init__()
        self.ninp, self.nhid, self.steps = ninp, nhid, steps
        self.W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE))
        self.Ws = nn.ParameterList([
            nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE))
            for _ in range(steps)])
        self.bn = nn.BatchNorm1d(nhid, affine=False)
        self.probs: Optional[torch.Tensor] = None
        self._ops = [(k, _act(name)) for k, name in enumerate(PRIMITIVES) if name != "none"]

    def forward(self, x: torch.Tensor, h: torch.Tensor, x_mask: Optional[torch.Tensor] = None,
                h_mask: Optional[torch.Tensor] = None):
        T, B, _ = x.shape
        H = self.nhid
        probs = self.probs
        if x_mask is not None:
            x = x * x_mask
        xproj = (x.reshape(T * B, self.ninp) @ self.W0[:self.ninp]).view(T, B, 2 * H)
        W0h = self.W0[self.ninp:]
        # per edge: P (edges,) and the op weights (edges, 4) of the non-none ops
        op_idx = [k for k, _ in self._ops]
        pw = probs[:, op_idx]
        P = pw.sum(-1)
        outs = []
        for t in range(T):
            hm = h if h_mask is None else h * h_mask
            c0, g0 = torch.addmm(xproj[t], hm, W0h).split(H, dim=-1)
            s0 = self.bn(torch.lerp(h, torch.tanh(g0), torch.sigmoid(c0)))
            states = s0.unsqueeze(0)                      # (i, B, H)
            offset = 0
            for i in range(self.steps):
                n = i + 1
                masked = states if h_mask is None else states * h_mask.unsqueeze(0)
                ch = (masked.reshape(n * B, H) @ self.Ws[i]).view(n, B, 2 * H)
                c, g = torch.sigmoid(ch[..., :H]), ch[..., H:]
                w = pw[offset:offset + n]                 # (n, ops)
                f = sum(w[:, q].view(n, 1, 1) * fn(g) for q, (_k, fn) in enumerate(self._ops))
                ps = P[offset:offset + n].view(n, 1, 1) * states
                s = (ps + c * (f - ps)).sum(0)
                states = torch.cat([states, self.bn(s).unsqueeze(0)], 0)
                offset += n
            h = states[1:].mean(0)
            outs.append(h)
        return torch.stack(outs, 0), h


class DartsRNNSupernet(Supernet, TiedEmbeddingLM):
    """DARTS's RNN search model: :class:`TiedEmbeddingLM` with :class:`SearchCell` and
    ``alpha`` (see the module doc)."""

    def __init__(self, ntokens: int, emsize: int = DARTS_SEARCH["emsize"],
                 nhid: Optional[int] = None, dropout: float = DARTS_SEARCH["dropout"],
                 dropouth: float = DARTS_SEARCH["dropouth"],
                 dropoutx: float = DARTS_SEARCH["dropoutx"],
                 dropouti: float = DARTS_SEARCH["dropouti"],
                 dropoute: float = DARTS_SEARCH["dropoute"], steps: int = STEPS) -> None:
        nhid = emsize if nhid is None else nhid
        if nhid != emsize:
            raise UserError(f"the decoder is tied to the embedding: nhid ({nhid}) must equal "
                            f"emsize ({emsize})")
        for name, p in (("dropout", dropout), ("dropouth", dropouth), ("dropoutx", dropoutx),
                        ("dropouti", dropouti), ("dropoute", dropoute)):
            if not 0.0 <= p < 1.0:
                raise UserError(f"{name} must be in [0, 1), got {p}")
        super().__init__(int(ntokens), emsize, nhid, dropout, dropouth, dropoutx, dropouti,
                         dropoute)
        self.steps = int(steps)
        self.cell = SearchCell(emsize, nhid, self.steps)
        self.decoder_bias = nn.Parameter(torch.zeros(int(ntokens)))
        self._init_embedding(None, INITRANGE)
        edges = self.steps * (self.steps + 1) // 2
        self.alpha = nn.Parameter(1e-3 * torch.randn(edges, len(PRIMITIVES)))

    def forward_raw(self, inputs, hidden, generator=None):
        self.cell.probs = F.softmax(self.alpha, dim=-1)
        try:
            return super().forward_raw(inputs, hidden, generator)
        finally:
            self.cell.probs = None

    def edge_weights(self) -> Dict[str, torch.Tensor]:
        return {"cell": F.softmax(self.alpha.detach(), dim=-1)}

    def derive(self) -> Genotype:
        probs = F.softmax(self.alpha.detach().double(), dim=-1).cpu().tolist()
        none = PRIMITIVES.index("none")
        gene: List = []
        start = 0
        for i in range(self.steps):
            rows = probs[start:start + i + 1]
            best = [max(p for k, p in enumerate(row) if k != none) for row in rows]
            j = max(range(i + 1), key=lambda x: (best[x], -x))  # first of equals, as DARTS
            k = max((k for k in range(len(PRIMITIVES)) if k != none),
                    key=lambda k: (rows[j][k], -k))
            gene.append((PRIMITIVES[k], j))
            start += i + 1
        return Genotype(recurrent=gene, concat=range(1, self.steps + 1))


__all__ = ["DARTS_SEARCH", "DartsRNNSupernet", "SearchCell"]
