"""NAO's encoder-predictor-decoder (Luo et al., 2018), sized as the TF NAO-WS search script.

The encoder (an LSTM over the 20 branch pairs) gives L2-normalised outputs whose normalised mean
is the architecture's embedding; the predictor (an MLP and a sigmoid) maps the embedding to a
normalised accuracy; the decoder (an LSTM with attention over the encoder outputs) maps back
to tokens, restricted at each position to the valid ones
(:func:`searching.nao.pool.allowed_tokens`). Loss: ``trade_off * MSE + (1 - trade_off) * NLL``.
:meth:`NAOController.ascent` moves the encoder outputs one gradient step of size ``lam`` uphill
on the prediction; :meth:`NAOController.decode_moved` decodes them.

Fidelity notes: docs/fidelity/nao.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from searching.nao.pool import SOS, VOCAB, allowed_tokens
from api.spaces.enas_micro.arch import ARCH_LEN


@dataclass
class ControllerConfig:
    """The TF NAO-WS script's controller flags (``controller_*``)."""

    emb_size: int = 48
    hidden_size: int = 96
    encoder_dropout: float = 0.1
    mlp_layers: int = 3
    mlp_hidden_size: int = 100
    mlp_dropout: float = 0.1
    trade_off: float = 0.8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 100
    grad_bound: float = 5.0
    #: TF's lr decay: x0.9 every 1000 steps after step 100 (staircase).
    start_decay_step: int = 100
    decay_steps: int = 1000
    decay_factor: float = 0.9

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _position_mask(length: int = ARCH_LEN) -> torch.Tensor:
    """``(length, VOCAB)`` additive mask: 0 where a token is valid at that position, -inf
    elsewhere."""
    mask = torch.full((length, VOCAB), float("-inf"))
    for t in range(length):
        lo, hi = allowed_tokens(t)
        mask[t, lo:hi] = 0.0
    return mask


class NAOController(nn.Module):
    """Encoder, predictor and decoder of NAO over the 40-token architecture form."""

    def __init__(self, config: Optional[ControllerConfig] = None) -> None:
        super().__init__()
        c = self.config = config or ControllerConfig()
        self.length = ARCH_LEN
        self.enc_embedding = nn.Embedding(VOCAB, c.emb_size)
        self.enc_rnn = nn.LSTM(2 * c.emb_size, c.hidden_size, batch_first=True)
        self.enc_dropout = nn.Dropout(c.encoder_dropout)
        layers, width = [], c.hidden_size
        for _ in range(c.mlp_layers):
            layers += [nn.Linear(width, c.mlp_hidden_size), nn.ReLU(),
                       nn.Dropout(c.mlp_dropout)]
            width = c.mlp_hidden_size
        self.mlp = nn.Sequential(*layers)
        self.regressor = nn.Linear(width, 1)
        self.dec_embedding = nn.Embedding(VOCAB, c.hidden_size)
        self.dec_rnn = nn.LSTM(c.hidden_size, c.hidden_size, batch_first=True)
        self.attn_out = nn.Linear(2 * c.hidden_size, c.hidden_size)
        self.out = nn.Linear(c.hidden_size, VOCAB)
        self.register_buffer("mask", _position_mask(), persistent=False)

    # ------------------------------------------------------------------ encoder/predictor
    def encode(self, seqs: torch.Tensor) -> torch.Tensor:
        """``(B, 40)`` tokens -> normalised encoder outputs ``(B, 20, hidden)``."""
        emb = self.enc_embedding(seqs).reshape(seqs.shape[0], self.length // 2, -1)
        out, _ = self.enc_rnn(emb)
        return F.normalize(self.enc_dropout(out), 2, dim=-1)

    def embed(self, outputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(outputs.mean(dim=1), 2, dim=-1)

    def predict_from(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.regressor(self.mlp(self.embed(outputs)))).squeeze(-1)

    def predict(self, seqs: torch.Tensor) -> torch.Tensor:
        """Predicted normalised accuracy ``(B,)``."""
        return self.predict_from(self.encode(seqs))

    # ------------------------------------------------------------------ decoder
    def _dec_step(self, tokens: torch.Tensor, state, outputs: torch.Tensor):
        out, state = self.dec_rnn(self.dec_embedding(tokens), state)
        attn = torch.softmax(torch.bmm(out, outputs.transpose(1, 2)), dim=-1)
        mixed = torch.bmm(attn, outputs)
        out = torch.tanh(self.attn_out(torch.cat([mixed, out], dim=-1)))
        return F.log_softmax(self.out(out), dim=-1), state

    def _init_state(self, outputs: torch.Tensor):
        h = self.embed(outputs).unsqueeze(0).contiguous()
        return h, h.clone()

    def decode_teacher(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B, 40, VOCAB)`` of ``targets`` given the previous target
        token (teacher forcing; the first input is the start symbol)."""
        inputs = torch.cat([torch.full_like(targets[:, :1], SOS), targets[:, :-1]], dim=1)
        log_probs, _ = self._dec_step(inputs, self._init_state(outputs), outputs)
        return log_probs

    @torch.no_grad()
    def decode_greedy(self, outputs: torch.Tensor) -> torch.Tensor:
        """The most likely valid token at each position, fed back: ``(B, 40)``."""
        state = self._init_state(outputs)
        token = torch.full((outputs.shape[0], 1), SOS, dtype=torch.long, device=outputs.device)
        seq = []
        for t in range(self.length):
            log_probs, state = self._dec_step(token, state, outputs)
            token = (log_probs[:, -1] + self.mask[t]).argmax(-1, keepdim=True)
            seq.append(token)
        return torch.cat(seq, dim=1)

    # ------------------------------------------------------------------ training / search
    def forward(self, seqs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(prediction (B,), log-probabilities (B, 40, VOCAB))`` with teacher forcing."""
        outputs = self.encode(seqs)
        return self.predict_from(outputs), self.decode_teacher(outputs, seqs)

    def loss(self, seqs: torch.Tensor, targets: torch.Tensor
             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, MSE, NLL) of one batch; the decoder reconstructs its own input."""
        pred, log_probs = self(seqs)
        mse = F.mse_loss(pred, targets)
        nll = F.nll_loss(log_probs.reshape(-1, VOCAB), seqs.reshape(-1))
        w = self.config.trade_off
        return w * mse + (1 - w) * nll, mse, nll

    def ascent(self, seqs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Each input's encoder outputs and the gradient of its predicted accuracy along
        them (dropout off), the same for every step size of :meth:`decode_moved`."""
        was_training = self.training
        self.eval()
        with torch.enable_grad():
            outputs = self.encode(seqs).detach().requires_grad_(True)
            pred = self.predict_from(outputs)
            grad, = torch.autograd.grad(pred.sum(), outputs)
        self.train(was_training)
        return outputs.detach(), grad

    def decode_moved(self, outputs: torch.Tensor, grad: torch.Tensor, lam: float
                     ) -> torch.Tensor:
        """``outputs`` moved by ``lam`` x ``grad`` (:meth:`ascent`), renormalised, decoded
        greedily (the decoder has no dropout: the same in either mode)."""
        return self.decode_greedy(F.normalize(outputs + lam * grad, 2, dim=-1))

    @torch.no_grad()
    def reconstruct(self, seqs: torch.Tensor) -> torch.Tensor:
        """Greedy decoding of the inputs' own embeddings (the autoencoder's output)."""
        was_training = self.training
        self.eval()
        out = self.decode_greedy(self.encode(seqs))
        self.train(was_training)
        return out


def controller_lr(config: ControllerConfig, step: int) -> float:
    """TF NAO's learning rate at controller step ``step`` (staircase decay after
    ``start_decay_step``)."""
    if step < config.start_decay_step:
        return config.lr
    return config.lr * config.decay_factor ** ((step - config.start_decay_step)
                                               // config.decay_steps)
