"""ENAS's CNN controllers (melodyguan/enas ``src/cifar10/micro_controller.py`` and
``general_controller.py`` with ``search_whole_channels``), as PyTorch modules.

Both are one-layer LSTMs of ENAS's own bias-free form, weights U(-0.1, 0.1).
``sample(generator)`` draws one architecture with ``torch.multinomial`` on ``generator`` (a
seed fixes the samples) and returns a :class:`Sample`: the architecture, the summed
log-probability (differentiable), the entropy (a float) and, for the macro controller, the
skip penalty (differentiable) and the number of skips. Logits are divided by ``temperature``
when set, then ``tanh_c * tanh(.)`` when ``tanh_c`` is set.

Fidelity notes (op bias, entropy, skip penalty): docs/fidelity/enas.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from api.spaces.enas_macro.arch import make_macro
from api.spaces.enas_micro.arch import make_arch


@dataclass
class Sample:
    arch: object
    log_prob: torch.Tensor
    entropy: float
    skip_penalty: Optional[torch.Tensor] = None
    skip_count: int = 0


class _LSTMController(nn.Module):
    def __init__(self, lstm_size: int, num_branches: int, tanh_c: Optional[float],
                 temperature: Optional[float]) -> None:
        super().__init__()
        H = int(lstm_size)
        self.H, self.num_branches = H, num_branches
        self.tanh_c = tanh_c
        self.temperature = temperature
        self.w_lstm = nn.Parameter(torch.empty(2 * H, 4 * H))
        self.g_emb = nn.Parameter(torch.empty(1, H))
        self.w_emb = nn.Parameter(torch.empty(num_branches, H))
        self.w_soft = nn.Parameter(torch.empty(H, num_branches))
        self.w_attn_1 = nn.Parameter(torch.empty(H, H))
        self.w_attn_2 = nn.Parameter(torch.empty(H, H))
        self.v_attn = nn.Parameter(torch.empty(H, 1))
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def lstm(self, x: torch.Tensor, c: torch.Tensor, h: torch.Tensor):
        i, f, o, g = (torch.cat([x, h], 1) @ self.w_lstm).chunk(4, 1)
        c = torch.sigmoid(i) * torch.tanh(g) + torch.sigmoid(f) * c
        return c, torch.sigmoid(o) * torch.tanh(c)

    def squash(self, logits: torch.Tensor, tanh_c: Optional[float]) -> torch.Tensor:
        if self.temperature is not None:
            logits = logits / self.temperature
        if tanh_c is not None:
            logits = tanh_c * torch.tanh(logits)
        return logits

    @staticmethod
    def draw(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Indices (one per row) drawn from softmax(logits)."""
        probs = F.softmax(logits.detach(), -1)
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(
            logits.device)

    def zeros(self) -> torch.Tensor:
        return self.g_emb.new_zeros(1, self.H)


class MicroController(_LSTMController):
    """ENAS's micro controller (see the module doc)."""

    def __init__(self, lstm_size: int = 64, num_cells: int = 5, num_branches: int = 5,
                 tanh_c: Optional[float] = 1.10, op_tanh_reduce: float = 2.5,
                 temperature: Optional[float] = None) -> None:
        super().__init__(lstm_size, num_branches, tanh_c, temperature)
        self.num_cells, self.op_tanh_reduce = num_cells, float(op_tanh_reduce)
        self.b_soft = nn.Parameter(torch.tensor([[10.0, 10.0] + [0.0] * (num_branches - 2)]))
        self.register_buffer("b_soft_no_learn",
                             torch.tensor([[0.25, 0.25] + [-0.25] * (num_branches - 2)]))

    def _cell(self, c, h, generator, use_bias: bool):
        arc: List[int] = []
        log_prob, entropy = 0.0, 0.0
        anchors, anchors_w1 = [], []
        for _ in range(2):
            c, h = self.lstm(self.g_emb, c, h)
            anchors.append(torch.zeros_like(h))
            anchors_w1.append(h @ self.w_attn_1)
        op_tanh = None if self.tanh_c is None else self.tanh_c / self.op_tanh_reduce
        for node in range(self.num_cells):
            inputs = self.g_emb
            for _ in range(2):  # the two inputs
                c, h = self.lstm(inputs, c, h)
                query = torch.tanh(torch.cat(anchors_w1, 0) + h @ self.w_attn_2)
                logits = self.squash((query @ self.v_attn).view(1, -1), self.tanh_c)
                index = self.draw(logits, generator)
                lp = F.log_softmax(logits, -1)
                log_prob = log_prob - F.nll_loss(lp, index)
                entropy += float(-(lp.exp() * lp).sum().detach())
                arc.append(int(index))
                inputs = anchors[int(index)]
            for _ in range(2):  # the two ops
                c, h = self.lstm(inputs, c, h)
                logits = self.squash(h @ self.w_soft + self.b_soft, op_tanh)
                if use_bias:
                    logits = logits + self.b_soft_no_learn
                op = self.draw(logits, generator)
                lp = F.log_softmax(logits, -1)
                log_prob = log_prob - F.nll_loss(lp, op)
                entropy += float(-(lp.exp() * lp).sum().detach())
                arc.append(int(op))
                inputs = self.w_emb[op]
            c, h = self.lstm(inputs, c, h)
            anchors.append(h)
            anchors_w1.append(h @ self.w_attn_1)
        # ENAS writes [idx1, idx2, op1, op2] per node in sampling order; reorder to the
        # fixed_arc layout [idx1, op1, idx2, op2]
        out = []
        for n in range(self.num_cells):
            i1, i2, o1, o2 = arc[4 * n: 4 * n + 4]
            out += [i1, o1, i2, o2]
        return out, log_prob, entropy, c, h

    def sample(self, generator: torch.Generator) -> Sample:
        c, h = self.zeros(), self.zeros()
        normal, lp1, ent1, c, h = self._cell(c, h, generator, use_bias=True)
        reduce, lp2, ent2, _, _ = self._cell(c, h, generator, use_bias=False)
        return Sample(make_arch(normal + reduce), lp1 + lp2, ent1 + ent2)


class MacroController(_LSTMController):
    """ENAS's macro controller with whole-channel ops (see the module doc)."""

    def __init__(self, lstm_size: int = 64, num_layers: int = 12, num_branches: int = 6,
                 tanh_c: Optional[float] = 1.5, temperature: Optional[float] = None,
                 skip_target: float = 0.4) -> None:
        super().__init__(lstm_size, num_branches, tanh_c, temperature)
        self.num_layers = num_layers
        self.register_buffer("skip_targets", torch.tensor([1.0 - skip_target, skip_target]))

    def sample(self, generator: torch.Generator) -> Sample:
        c, h = self.zeros(), self.zeros()
        inputs = self.g_emb
        anchors, anchors_w1 = [], []
        flat: List[int] = []
        log_prob, entropy, penalties, skips = 0.0, 0.0, [], 0
        for layer in range(self.num_layers):
            c, h = self.lstm(inputs, c, h)
            logits = self.squash(h @ self.w_soft, self.tanh_c)
            op = self.draw(logits, generator)
            lp = -F.cross_entropy(logits, op)
            log_prob = log_prob + lp
            entropy += float(-lp.detach() * lp.detach().exp())
            flat.append(int(op))
            inputs = self.w_emb[op]
            c, h = self.lstm(inputs, c, h)
            if layer > 0:
                query = torch.tanh(torch.cat(anchors_w1, 0) + h @ self.w_attn_2)
                q = query @ self.v_attn                              # (layer, 1)
                logits = self.squash(torch.cat([-q, q], 1), self.tanh_c)
                skip = self.draw(logits, generator)                 # (layer,)
                p = torch.sigmoid(logits)
                penalties.append((p * torch.log(p / self.skip_targets)).sum())
                lps = -F.cross_entropy(logits, skip, reduction="none")
                log_prob = log_prob + lps.sum()
                entropy += float((-lps.detach() * lps.detach().exp()).sum())
                bits = [int(b) for b in skip]
                flat += bits
                skips += sum(bits)
                inputs = (skip.float().view(1, -1) @ torch.cat(anchors, 0)) / (1.0 + sum(bits))
            else:
                inputs = self.g_emb
            anchors.append(h)
            anchors_w1.append(h @ self.w_attn_1)
        penalty = torch.stack(penalties).mean() if penalties else self.g_emb.new_zeros(())
        return Sample(make_macro(flat), log_prob, entropy, penalty, skips)
