"""ENAS's RNN-cell controller: an LSTM that samples an ENAS RNN list decision by decision.

As carpedm20/ENAS-pytorch ``models/controller.py`` and the paper (§2.1): 2N - 1 decisions
``[act_0, prev_1, act_1, ..., prev_{N-1}, act_{N-1}]``, each from its own linear head on an
``LSTMCell`` fed the embedding of the decision just taken. Returns, per sample, the list and the
sums of its decisions' log-probabilities and entropies. Samples are drawn from a
``torch.Generator`` the caller owns (checkpointed), so a seed, and a resumed run, draw the same
cells.

Fidelity notes: docs/fidelity/enas.md.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from api.spaces.enas_rnn import ACTIVATIONS


class RNNController(nn.Module):
    def __init__(self, num_nodes: int = 12, hidden: int = 100, temperature: float = 5.0,
                 tanh_c: float = 2.5, num_acts: int = len(ACTIVATIONS)) -> None:
        super().__init__()
        self.num_nodes, self.hidden = int(num_nodes), int(hidden)
        self.temperature, self.tanh_c, self.num_acts = float(temperature), float(tanh_c), num_acts
        # decision d: even -> activation of node d // 2; odd -> predecessor of node (d + 1) // 2
        self.sizes: List[int] = [num_acts if d % 2 == 0 else (d + 1) // 2
                                 for d in range(2 * self.num_nodes - 1)]
        self.lstm = nn.LSTMCell(self.hidden, self.hidden)
        self.embed = nn.Embedding(num_acts + max(self.num_nodes - 1, 1), self.hidden)
        self.heads = nn.ModuleList(nn.Linear(self.hidden, n) for n in self.sizes)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-0.1, 0.1)
            for head in self.heads:
                head.bias.zero_()

    def logits(self, out: torch.Tensor, decision: int) -> torch.Tensor:
        z = self.heads[decision](out) / self.temperature
        return self.tanh_c * torch.tanh(z) if self.tanh_c > 0 else z

    def sample(self, n: int = 1, generator: Optional[torch.Generator] = None
               ) -> Tuple[List[Tuple[int, ...]], torch.Tensor, torch.Tensor]:
        """``n`` cells: (lists, log-probabilities (n,), entropies (n,)), differentiable in
        the controller's weights."""
        dev = self.embed.weight.device
        x = torch.zeros(n, self.hidden, device=dev)
        state = None
        log_prob = torch.zeros(n, device=dev)
        entropy = torch.zeros(n, device=dev)
        actions = []
        for d in range(len(self.sizes)):
            state = self.lstm(x, state)
            logp = torch.log_softmax(self.logits(state[0], d), dim=-1)
            probs = logp.exp()
            u = torch.rand(n, 1, generator=generator, device=generator.device
                           if generator is not None else dev).to(dev)
            a = (probs.detach().cumsum(-1) < u).sum(-1).clamp(max=self.sizes[d] - 1)
            log_prob = log_prob + logp.gather(1, a.view(n, 1)).squeeze(1)
            entropy = entropy - (probs * logp).sum(-1)
            actions.append(a)
            x = self.embed(a + (0 if d % 2 == 0 else self.num_acts))
        arcs = [tuple(int(v) for v in col) for col in torch.stack(actions, 1).cpu()]
        return arcs, log_prob, entropy


__all__ = ["RNNController"]
