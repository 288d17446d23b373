"""The ENAS RNN shared-weight language model (Pham et al. 2018, §2.1; carpedm20/ENAS-pytorch
``models/shared_rnn.py``): every cell of the ENAS RNN space runs on it.

Weights: node 0's ``W0`` ((emsize + nhid) x 2 nhid, with a bias) and one (nhid x 2 nhid)
matrix per *pair* of nodes j < i. A cell (an ENAS list, :mod:`api.spaces.enas_rnn`) computes
highway nodes ``s_i = s_j + sigmoid(c) (f_i(g) - s_j)``; the output is BN of the mean of the
loose ends, which is also the next hidden state (norm clipped at 25); BN's scale and shift
start U(-0.025, 0.025) as carpedm20's (``bn_init="ones"``: 1 and 0). For speed the input half
of W0 runs on all steps in one matmul, and nodes reading the same state share one matmul.

Fidelity notes (regularisers, BN, next hidden state): docs/fidelity/enas.md.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from api.errors import UserError
from api.lm.tied_lm import TiedEmbeddingLM
from api.spaces.darts_rnn.model import _act
from api.spaces.enas_rnn import ACTIVATIONS, NUM_NODES, arc_loose_ends, check_arc
from api.spaces.supernet import Supernet

#: carpedm20/ENAS-pytorch config.py: the shared model of the PTB search.
ENAS_SHARED = {"emsize": 1000, "nhid": 1000, "dropout": 0.4, "dropoute": 0.1,
               "dropouti": 0.65, "wdrop": 0.5}
INIT_RANGE = 0.025      # carpedm20 reset_parameters, mode 'train'
MAX_HIDDEN_NORM = 25.0  # carpedm20 RNN.forward
#: the cell-output BN's initial scale and shift: ``uniform`` U(-0.025, 0.025) as every other
#: parameter (carpedm20), ``ones`` scale 1 and shift 0 (PyTorch's BatchNorm default)
BN_INITS = ("uniform", "ones")


def edge_index(node: int, pred: int) -> int:
    """Row of the pair (node i >= 1 reading node j < i) in the stacked pair matrices."""
    return node * (node - 1) // 2 + pred


class SharedCell(nn.Module):
    """The shared recurrent cell; ``arc`` (an ENAS list) is set before each forward."""

    def __init__(self, ninp: int, nhid: int, num_nodes: int, wdrop: float,
                 bn_init: str = "uniform") -> None:
        super().__init__()
        self.ninp, self.nhid, self.num_nodes, self.wdrop = ninp, nhid, num_nodes, wdrop
        r = INIT_RANGE
        self.W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-r, r))
        self.b0 = nn.Parameter(torch.empty(2 * nhid).uniform_(-r, r))
        pairs = num_nodes * (num_nodes - 1) // 2
        self.Wp = nn.Parameter(torch.empty(pairs, nhid, 2 * nhid).uniform_(-r, r))
        self.bn = nn.BatchNorm1d(nhid)
        if bn_init == "uniform":  # carpedm20 reset_parameters draws every parameter, BN's too
            with torch.no_grad():
                self.bn.weight.uniform_(-r, r)
                self.bn.bias.uniform_(-r, r)
        elif bn_init != "ones":
            raise UserError(f"--shared_bn_init {bn_init!r} is not one of {', '.join(BN_INITS)}")
        self.arc: Optional[Tuple[int, ...]] = None

    def plan(self, arc: Sequence[int]):
        """(first activation, [(source, [nodes reading it])], activations per node, ends)."""
        a = check_arc(tuple(arc))
        n = (len(a) + 1) // 2
        if n > self.num_nodes:
            raise UserError(f"a {n}-node cell does not fit the {self.num_nodes}-node supernet")
        groups: Dict[int, List[int]] = {}
        for k in range(1, n):
            groups.setdefault(a[2 * k - 1], []).append(k)
        acts = [_act(ACTIVATIONS[a[2 * k]]) for k in range(n)]
        return acts[0], sorted(groups.items()), acts, arc_loose_ends(a)

    def forward(self, x: torch.Tensor, h: torch.Tensor, x_mask=None, h_mask=None):
        if self.arc is None:
            raise RuntimeError("SharedCell.arc is not set")
        f0, groups, acts, ends = self.plan(self.arc)
        T, B, _ = x.shape
        H = self.nhid
        if x_mask is not None:
            x = x * x_mask
        xproj = torch.addmm(self.b0, x.reshape(T * B, self.ninp), self.W0[:self.ninp])
        xproj = xproj.view(T, B, 2 * H)
        W0h = self.W0[self.ninp:]
        if self.training and self.wdrop:
            W0h = F.dropout(W0h, p=self.wdrop, training=True)
        weights = []
        for src, kids in groups:  # [W^c of each reader | W^h of each reader]
            ws = [self.Wp[edge_index(k, src)] for k in kids]
            weights.append(ws[0] if len(ws) == 1 else
                           torch.cat([w[:, :H] for w in ws] + [w[:, H:] for w in ws], 1))
        inv = 1.0 / len(ends)
        means = []
        for t in range(T):
            hm = h if h_mask is None else h * h_mask
            c0, g0 = torch.addmm(xproj[t], hm, W0h).split(H, dim=-1)
            states: List[Optional[torch.Tensor]] = [None] * len(acts)
            states[0] = torch.lerp(h, f0(g0), torch.sigmoid(c0))
            for (src, kids), w in zip(groups, weights):
                s = states[src]
                y = s @ w
                m = len(kids)
                gates = torch.sigmoid(y[:, :m * H])
                for q, k in enumerate(kids):
                    states[k] = torch.lerp(s, acts[k](y[:, (m + q) * H:(m + q + 1) * H]),
                                           gates[:, q * H:(q + 1) * H])
            mean = states[ends[0]] if len(ends) == 1 else \
                torch.stack([states[e] for e in ends], 0).sum(0) * inv
            means.append(mean)
            norm = mean.detach().norm(dim=-1, keepdim=True)
            h = mean * (MAX_HIDDEN_NORM / norm).clamp(max=1.0)
        out = torch.stack(means, 0)
        out = self.bn(out.reshape(T * B, H)).view(T, B, H)
        return out, h


class EnasRNNSupernet(Supernet, TiedEmbeddingLM):
    """The shared LM (see the module doc); ``set_arc(arc)`` picks the cell the next forward
    passes run. No architecture parameters: ENAS's policy lives in its controller."""

    def __init__(self, ntokens: int, emsize: int = ENAS_SHARED["emsize"],
                 nhid: Optional[int] = None, dropout: float = ENAS_SHARED["dropout"],
                 dropoute: float = ENAS_SHARED["dropoute"],
                 dropouti: float = ENAS_SHARED["dropouti"], wdrop: float = ENAS_SHARED["wdrop"],
                 num_nodes: int = NUM_NODES, bn_init: str = "uniform") -> None:
        nhid = emsize if nhid is None else nhid
        if nhid != emsize:
            raise UserError(f"the decoder is tied to the embedding: --shared_hid ({nhid}) must "
                            f"equal --shared_embed ({emsize})")
        for name, p in (("dropout", dropout), ("dropoute", dropoute), ("dropouti", dropouti),
                        ("wdrop", wdrop)):
            if not 0.0 <= p < 1.0:
                raise UserError(f"shared {name} must be in [0, 1), got {p}")
        if num_nodes < 1:
            raise UserError(f"--num_blocks must be at least 1, got {num_nodes}")
        super().__init__(int(ntokens), emsize, nhid, dropout, 0.0, 0.0, dropouti, dropoute)
        self.num_nodes = int(num_nodes)
        self.cell = SharedCell(emsize, nhid, self.num_nodes, wdrop, bn_init)
        self.decoder_bias = nn.Parameter(torch.zeros(int(ntokens)))
        self._init_embedding(None, INIT_RANGE)

    def set_arc(self, arc: Sequence[int]) -> None:
        self.cell.arc = tuple(int(v) for v in arc)

    @property
    def arc(self):
        return self.cell.arc

    def edge_weights(self) -> Dict[str, torch.Tensor]:
        return {}

    def derive(self):
        if self.cell.arc is None:
            raise RuntimeError("no cell set")
        return self.cell.arc


__all__ = ["BN_INITS", "ENAS_SHARED", "EnasRNNSupernet", "SharedCell", "edge_index"]
