"""ENAS's controller for the NAS-Bench-201 cell, as AutoDL-Projects runs ENAS on that space
(``xautodl/models/cell_searchs/search_model_enas_utils.py``, ``Controller``).

Unlike ENAS's own CNN controllers (:mod:`searching.enas.cnn_controllers`: a bias-free one-layer
LSTM written out by hand, attention over earlier nodes), AutoDL's is a two-layer ``nn.LSTM``
that picks one op per edge, in the cell string's edge order, feeding the embedding of each
chosen op to the next step; logits are ``tanh_constant * tanh(linear(h) / temperature)``. The
parameters are laid out as AutoDL's (``input_vars``, ``w_lstm``, ``w_embd``, ``w_pred``) and
initialised as AutoDL's, so AutoDL's module can be loaded with this one's state and serve as its
oracle. Draws come from a ``torch.Generator``: seeded as AutoDL's global RNG, it gives AutoDL's
very sample.

Fidelity notes: docs/fidelity/enas.md (NAS-Bench-201).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import nn
from torch.distributions.categorical import Categorical

from api.spaces.nasbench201.cell import EDGES, OPS, Cell


@dataclass
class NB201Sample:
    """One sampled cell: its op indices per edge, the summed log-probability and the summed
    entropy of the per-edge distributions (both differentiable tensors, as AutoDL's)."""

    ops: List[int]
    log_prob: torch.Tensor
    entropy: torch.Tensor

    @property
    def arch(self) -> Cell:
        return Cell.from_op_indices(self.ops)


class NB201Controller(nn.Module):
    """AutoDL's ENAS controller over the 6 edges of a NAS-Bench-201 cell (see the module doc).
    Defaults are AutoDL's: 32 units, 2 layers, tanh constant 2.5, temperature 5."""

    def __init__(self, num_edges: int = len(EDGES), num_ops: int = len(OPS),
                 lstm_size: int = 32, lstm_layers: int = 2, tanh_constant: float = 2.5,
                 temperature: float = 5.0) -> None:
        super().__init__()
        if min(num_edges, num_ops, lstm_size, lstm_layers) < 1:
            raise ValueError("the controller needs at least one edge, op, unit and layer")
        if temperature <= 0:
            raise ValueError(f"temperature {temperature} must be positive")
        self.num_edges, self.num_ops = int(num_edges), int(num_ops)
        self.lstm_size, self.lstm_layers = int(lstm_size), int(lstm_layers)
        self.tanh_constant, self.temperature = float(tanh_constant), float(temperature)
        H = self.lstm_size
        self.input_vars = nn.Parameter(torch.empty(1, 1, H))
        self.w_lstm = nn.LSTM(input_size=H, hidden_size=H, num_layers=self.lstm_layers)
        self.w_embd = nn.Embedding(self.num_ops, H)
        self.w_pred = nn.Linear(H, self.num_ops)
        # AutoDL sets only these to U(-0.1, 0.1); the LSTM's biases and upper layers and the
        # prediction bias keep PyTorch's own initialisation
        for p in (self.input_vars, self.w_lstm.weight_hh_l0, self.w_lstm.weight_ih_l0,
                  self.w_embd.weight, self.w_pred.weight):
            nn.init.uniform_(p, -0.1, 0.1)

    def sample(self, generator: Optional[torch.Generator] = None) -> NB201Sample:
        """Draw one cell, edge by edge. The draw is ``Categorical.sample``'s
        (``torch.multinomial`` with replacement on the distribution's probabilities), on
        ``generator`` (a CPU generator; the global RNG when None)."""
        inputs, state = self.input_vars, None
        ops: List[int] = []
        log_probs, entropies = [], []
        for _ in range(self.num_edges):
            out, state = self.w_lstm(inputs, state)
            logits = self.tanh_constant * torch.tanh(self.w_pred(out) / self.temperature)
            dist = Categorical(logits=logits)
            probs = dist.probs.detach().reshape(-1, self.num_ops)
            index = torch.multinomial(probs.cpu(), 1, True, generator=generator)
            index = index.reshape(dist.batch_shape).to(logits.device)
            ops.append(int(index.item()))
            log_probs.append(dist.log_prob(index).reshape(-1))
            entropies.append(dist.entropy().reshape(-1))
            inputs = self.w_embd(index)
        return NB201Sample(ops, torch.cat(log_probs).sum(), torch.cat(entropies).sum())

    def extra_repr(self) -> str:
        return (f"edges={self.num_edges}, ops={self.num_ops}, lstm={self.lstm_size}x"
                f"{self.lstm_layers}, tanh_constant={self.tanh_constant}, "
                f"temperature={self.temperature}")
