"""The highway RNN cell of DARTS and ENAS, and its language model (PTB network).

One implementation serves both spaces (DARTS ``rnn/model.py`` ``DARTSCell``/``RNNModel`` and
ENAS ``ptb_enas_child.py`` ``_rhn_fixed`` compute the same thing): a first highway state from
x_t and h_{t-1}, then node k with predecessor p: ``s_k = s_p + sigmoid(c) * (f(h) - s_p)``;
the output (= new hidden state) is the mean of the states in ``concat``. ``dropoutx`` /
``dropouth`` masks are drawn once per forward; weights ~ U(-0.04, 0.04).

:class:`CellLM` is DARTS's ``RNNModel`` with this cell, a
:class:`api.lm.tied_lm.TiedEmbeddingLM` like the AutoShrink RNN model, so one trainer trains
either. Fidelity notes: docs/fidelity/darts.md, docs/fidelity/enas.md.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from api.errors import UserError
from api.lm.tied_lm import TiedEmbeddingLM

INITRANGE = 0.04

_ACTS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
         "identity": lambda x: x}


def _act(name: str):
    try:
        return _ACTS[name]
    except KeyError:
        raise UserError(f"unknown activation {name!r}; choose from {', '.join(_ACTS)}") from None


class HighwayCell(nn.Module):
    """The cell of ``nodes`` = [(activation, predecessor), ...] (node k = entry k-1) with
    output = mean of the states ``concat``; ``forward(x (T, B, ninp), h (B, nhid))``."""

    def __init__(self, ninp: int, nhid: int, nodes: Sequence[Tuple[str, int]],
                 concat: Sequence[int], first_act: str = "tanh") -> None:
        super().__init__()
        self.ninp, self.nhid = ninp, nhid
        self.nodes: List[Tuple[str, int]] = [(str(a), int(p)) for a, p in nodes]
        self.concat: List[int] = [int(c) for c in concat]
        self.first_act = first_act
        for k, (act, pred) in enumerate(self.nodes, start=1):
            _act(act)
            if not 0 <= pred < k:
                raise UserError(f"node {k}: predecessor {pred} is not an earlier state")
        _act(first_act)
        if not self.concat or not all(0 <= c <= len(self.nodes) for c in self.concat):
            raise UserError(f"output states {self.concat} are not states of a "
                            f"{len(self.nodes)}-node cell")
        self.W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE))
        self.Ws = nn.ParameterList([
            nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE))
            for _ in self.nodes])
        # Nodes reading the same state share one matmul: per source state (ascending, so a
        # source is always ready before its group runs), its readers in node order.
        groups: Dict[int, List[int]] = {}
        for k, (_act_name, pred) in enumerate(self.nodes, start=1):
            groups.setdefault(pred, []).append(k)
        self._groups: List[Tuple[int, List[int]]] = sorted(groups.items())

    def _group_weights(self) -> List[torch.Tensor]:
        """Per source: [W_c of each reader | W_h of each reader], (nhid, 2 m nhid)."""
        H = self.nhid
        out = []
        for _src, kids in self._groups:
            ws = [self.Ws[k - 1] for k in kids]
            out.append(ws[0] if len(ws) == 1 else
                       torch.cat([w[:, :H] for w in ws] + [w[:, H:] for w in ws], dim=1))
        return out

    def forward(self, x: torch.Tensor, h: torch.Tensor, x_mask: Optional[torch.Tensor] = None,
                h_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Cell outputs (T, B, nhid) and the last one (the new hidden state)."""
        T, B, _ = x.shape
        H = self.nhid
        if x_mask is not None:
            x = x * x_mask
        # the input half of W0 for all steps at once: [x ; h] W0 = x W0[:ninp] + h W0[ninp:]
        xproj = (x.reshape(T * B, self.ninp) @ self.W0[:self.ninp]).view(T, B, 2 * H)
        W0h = self.W0[self.ninp:]
        wgroups = self._group_weights()
        f0 = _act(self.first_act)
        acts = [_act(a) for a, _ in self.nodes]
        inv = 1.0 / len(self.concat)
        outs = []
        for t in range(T):
            hm = h if h_mask is None else h * h_mask
            c0, g0 = torch.addmm(xproj[t], hm, W0h).split(H, dim=-1)
            states: List[Optional[torch.Tensor]] = [torch.lerp(h, f0(g0), torch.sigmoid(c0))]
            states.extend([None] * len(self.nodes))
            for (src, kids), w in zip(self._groups, wgroups):
                s = states[src]
                y = (s if h_mask is None else s * h_mask) @ w
                m = len(kids)
                gates = torch.sigmoid(y[:, :m * H])
                for q, k in enumerate(kids):
                    pre = y[:, (m + q) * H:(m + q + 1) * H]
                    states[k] = torch.lerp(s, acts[k - 1](pre), gates[:, q * H:(q + 1) * H])
            if len(self.concat) == 1:
                h = states[self.concat[0]]
            else:
                h = torch.stack([states[c] for c in self.concat], 0).sum(0) * inv
            outs.append(h)
        return torch.stack(outs, 0), h


class CellLM(TiedEmbeddingLM):
    """Embedding -> :class:`HighwayCell` -> tied decoder, with DARTS's dropouts.

    ``dropout`` (cell outputs, locked), ``dropouth``/``dropoutx`` (the cell's h and x masks),
    ``dropouti`` (embedding outputs, locked), ``dropoute`` (whole words); all act in training
    mode only. ``decoder_bias=False`` keeps a zero, untrained bias (ENAS's decoder has none).
    Forward pass, log-probabilities and loss: :class:`api.lm.tied_lm.TiedEmbeddingLM`.
    """

    def __init__(self, nodes: Sequence[Tuple[str, int]], concat: Sequence[int], ntoken: int,
                 ninp: int, nhid: Optional[int] = None, first_act: str = "tanh",
                 dropout: float = 0.0, dropouth: float = 0.0, dropoutx: float = 0.0,
                 dropouti: float = 0.0, dropoute: float = 0.0, decoder_bias: bool = True,
                 embedding: Optional[torch.Tensor] = None) -> None:
        nhid = ninp if nhid is None else nhid
        if nhid != ninp:
            raise UserError(f"the decoder is tied to the embedding: nhid ({nhid}) must equal "
                            f"emsize ({ninp})")
        for name, p in (("dropout", dropout), ("dropouth", dropouth), ("dropoutx", dropoutx),
                        ("dropouti", dropouti), ("dropoute", dropoute)):
            if not 0.0 <= p < 1.0:
                raise UserError(f"{name} must be in [0, 1), got {p}")
        super().__init__(ntoken, ninp, nhid, dropout, dropouth, dropoutx, dropouti, dropoute)
        self.cell = HighwayCell(ninp, nhid, nodes, concat, first_act)
        if decoder_bias:
            self.decoder_bias = nn.Parameter(torch.zeros(ntoken))
        else:
            self.register_buffer("decoder_bias", torch.zeros(ntoken))
        self._init_embedding(embedding, INITRANGE)


def lm_params(num_nodes: int, ntoken: int, ninp: int, nhid: int, decoder_bias: bool = True) -> int:
    """Trainable parameters of a :class:`CellLM` (tied embedding counted once)."""
    return (ntoken * ninp + (ninp + nhid) * 2 * nhid + num_nodes * nhid * 2 * nhid
            + (ntoken if decoder_bias else 0))


def lm_macs_per_token(num_nodes: int, ntoken: int, ninp: int, nhid: int) -> int:
    """Multiply-accumulates of one word (one step, batch 1): the cell's matmuls and the
    decoder; the embedding look-up and element-wise work are not counted."""
    return (ninp + nhid) * 2 * nhid + num_nodes * nhid * 2 * nhid + nhid * ntoken


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
