"""NAO's encoder-predictor-decoder (Luo et al., 2018) as the TF NAO-WS code builds it.

The encoder (an LSTM over the 20 branch pairs) gives L2-normalised outputs whose normalised mean
is the architecture's embedding; the predictor (an MLP and a sigmoid) maps the embedding to a
normalised accuracy; the decoder (an LSTM fed its previous attention context, with normed
Bahdanau attention over the encoder outputs) maps back to tokens, restricted at each position
to the valid ones (:func:`searching.nao.pool.allowed_tokens`). Loss:
``trade_off * MSE + (1 - trade_off) * NLL + weight_decay * l2``. :meth:`NAOController.ascent`
moves the encoder outputs one gradient step of size ``lam`` uphill on the prediction;
:meth:`NAOController.decode_moved` decodes them.

Fidelity notes: docs/fidelity/nao.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from api.errors import UserError
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
    #: TF passes 0.1 to a ``tf.layers.dropout`` call left in inference mode: no dropout. A
    #: positive value applies it while training (as NAO_pytorch does).
    mlp_dropout: float = 0.0
    trade_off: float = 0.8
    lr: float = 1e-3
    #: TF adds ``weight_decay * sum(w**2) / 2`` over every variable to the loss (before the
    #: gradient clip), so it is part of :meth:`NAOController.loss`, not the optimizer's.
    weight_decay: float = 1e-4
    batch_size: int = 100
    grad_bound: float = 5.0
    #: ``adam`` (TF's default: ``tf.train.AdamOptimizer`` with its own defaults, a constant
    #: rate) or ``sgd`` (plain gradient descent with the staircase decay below).
    optimizer: str = "adam"
    #: SGD only (TF ignores them under Adam): x0.9 every 1000 steps after step 100.
    start_decay_step: int = 100
    decay_steps: int = 1000
    decay_factor: float = 0.9
    #: With symmetry augmentation TF swaps the encoder input and the decoder target but feeds
    #: the decoder the unswapped sequence (shifted); True feeds it the swapped one.
    swapped_decoder_inputs: bool = False

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


def _tf_lstm_bias(lstm: nn.Module, hidden: int) -> None:
    """TF's ``LSTMCell`` has one zero-initialised bias and adds a constant 1 to the forget
    gate: ``bias_ih`` is that bias, ``bias_hh`` the frozen constant (torch's gate order i, f,
    g, o)."""
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("bias_ih"):
                p.zero_()
            elif name.startswith("bias_hh"):
                p.zero_()
                p[hidden:2 * hidden] = 1.0
                p.requires_grad_(False)


class NAOController(nn.Module):
    """Encoder, predictor and decoder of NAO over the 40-token architecture form."""

    def __init__(self, config: Optional[ControllerConfig] = None) -> None:
        super().__init__()
        c = self.config = config or ControllerConfig()
        if c.optimizer not in ("adam", "sgd"):
            raise UserError(f"--controller_optimizer must be adam or sgd, not {c.optimizer!r}")
        h = c.hidden_size
        self.length = ARCH_LEN
        self.enc_embedding = nn.Embedding(VOCAB, c.emb_size)
        self.enc_rnn = nn.LSTM(2 * c.emb_size, h, batch_first=True)
        self.enc_dropout = nn.Dropout(c.encoder_dropout)
        layers, width = [], h
        for _ in range(c.mlp_layers):
            layers += [nn.Linear(width, c.mlp_hidden_size), nn.ReLU(),
                       nn.Dropout(c.mlp_dropout)]
            width = c.mlp_hidden_size
        self.mlp = nn.Sequential(*layers)
        self.regressor = nn.Linear(width, 1)
        # decoder: an LSTM cell fed [token embedding; previous attention context] (input
        # feeding), normed Bahdanau attention over the encoder outputs, the cell's output
        # projected to the 12 tokens (TF's AttentionWrapper, output_attention=False)
        self.dec_embedding = nn.Embedding(VOCAB, h)
        self.dec_cell = nn.LSTMCell(2 * h, h)
        self.memory_layer = nn.Linear(h, h, bias=False)
        self.query_layer = nn.Linear(h, h, bias=False)
        self.attn_v = nn.Parameter(torch.empty(h))
        self.attn_g = nn.Parameter(torch.tensor(math.sqrt(1.0 / h)))
        self.attn_b = nn.Parameter(torch.zeros(h))
        self.out = nn.Linear(h, VOCAB)
        self.register_buffer("mask", _position_mask(), persistent=False)
        self._tf_init()

    def _tf_init(self) -> None:
        """TF's initialisers: uniform(-0.1, 0.1) for every weight (the encoder's and decoder's
        variable scopes), zero biases, an orthogonal kernel for the decoder cell, the normed
        attention's gain sqrt(1 / hidden)."""
        h = self.config.hidden_size
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.uniform_(module.weight, -0.1, 0.1)
                    if getattr(module, "bias", None) is not None:
                        module.bias.zero_()
            for name, p in self.enc_rnn.named_parameters():
                if name.startswith("weight"):
                    nn.init.uniform_(p, -0.1, 0.1)
            _tf_lstm_bias(self.enc_rnn, h)
            kernel = torch.empty(4 * h, 3 * h)  # TF's [inputs; state] x 4 gates kernel
            nn.init.orthogonal_(kernel)
            self.dec_cell.weight_ih.copy_(kernel[:, :2 * h])
            self.dec_cell.weight_hh.copy_(kernel[:, 2 * h:])
            _tf_lstm_bias(self.dec_cell, h)
            nn.init.uniform_(self.attn_v, -0.1, 0.1)
            self.attn_g.fill_(math.sqrt(1.0 / h))
            self.attn_b.zero_()

    def trainable(self) -> List[nn.Parameter]:
        """The trained parameters (not the LSTMs' constant forget-gate biases)."""
        return [p for p in self.parameters() if p.requires_grad]

    def l2(self) -> torch.Tensor:
        """``sum(w**2) / 2`` over the trained parameters (TF's ``tf.nn.l2_loss`` sum)."""
        return sum((p * p).sum() for p in self.trainable()) / 2

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
    def _dec_start(self, outputs: torch.Tensor):
        """The decoder's first state: the cell state (embedding, embedding), a zero context,
        and the attention keys of the encoder outputs."""
        emb = self.embed(outputs)
        return (emb, emb), torch.zeros_like(emb), self.memory_layer(outputs)

    def _dec_step(self, tokens: torch.Tensor, state, context: torch.Tensor,
                  outputs: torch.Tensor, keys: torch.Tensor):
        """One step: ``tokens`` ``(B,)`` -> (logits ``(B, VOCAB)``, state, context)."""
        h, c = self.dec_cell(torch.cat([self.dec_embedding(tokens), context], dim=-1), state)
        v = self.attn_g * self.attn_v / self.attn_v.norm()
        score = (v * torch.tanh(keys + self.query_layer(h).unsqueeze(1) + self.attn_b)).sum(-1)
        align = torch.softmax(score, dim=-1)
        context = torch.bmm(align.unsqueeze(1), outputs).squeeze(1)
        return self.out(h), (h, c), context

    def decode_teacher(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B, 40, VOCAB)`` given the previous token of ``targets`` at
        each step (teacher forcing; the first input is the start symbol)."""
        inputs = torch.cat([torch.full_like(targets[:, :1], SOS), targets[:, :-1]], dim=1)
        state, context, keys = self._dec_start(outputs)
        logits = []
        for t in range(self.length):
            step, state, context = self._dec_step(inputs[:, t], state, context, outputs, keys)
            logits.append(step)
        return F.log_softmax(torch.stack(logits, dim=1), dim=-1)

    @torch.no_grad()
    def decode_greedy(self, outputs: torch.Tensor) -> torch.Tensor:
        """The most likely valid token at each position, fed back: ``(B, 40)``."""
        state, context, keys = self._dec_start(outputs)
        token = torch.full((outputs.shape[0],), SOS, dtype=torch.long, device=outputs.device)
        seq = []
        for t in range(self.length):
            logits, state, context = self._dec_step(token, state, context, outputs, keys)
            token = (logits + self.mask[t]).argmax(-1)
            seq.append(token)
        return torch.stack(seq, dim=1)

    # ------------------------------------------------------------------ training / search
    def forward(self, seqs: torch.Tensor, decoder_inputs: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(prediction (B,), log-probabilities (B, 40, VOCAB))`` with teacher forcing on
        ``decoder_inputs`` (default ``seqs``)."""
        outputs = self.encode(seqs)
        feed = seqs if decoder_inputs is None else decoder_inputs
        return self.predict_from(outputs), self.decode_teacher(outputs, feed)

    def loss(self, seqs: torch.Tensor, targets: torch.Tensor,
             decoder_inputs: Optional[torch.Tensor] = None
             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, MSE, NLL) of one batch: the decoder reconstructs ``seqs`` (teacher-forced
        on ``decoder_inputs``, default ``seqs``); total = ``trade_off`` x MSE + (1 -
        ``trade_off``) x NLL + ``weight_decay`` x :meth:`l2`."""
        pred, log_probs = self(seqs, decoder_inputs)
        mse = F.mse_loss(pred, targets)
        nll = F.nll_loss(log_probs.reshape(-1, VOCAB), seqs.reshape(-1))
        w = self.config.trade_off
        total = w * mse + (1 - w) * nll
        if self.config.weight_decay:
            total = total + self.config.weight_decay * self.l2()
        return total, mse, nll

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


def make_optimizer(model: NAOController) -> torch.optim.Optimizer:
    """TF's controller optimizer: ``tf.train.AdamOptimizer(lr)`` with TF's defaults (beta1
    0.9, beta2 0.999, epsilon 1e-8: torch's too) or plain SGD; no decay term of its own (the
    l2 term is in the loss)."""
    cfg = model.config
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.trainable(), lr=cfg.lr)
    return torch.optim.Adam(model.trainable(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)


def controller_lr(config: ControllerConfig, step: int) -> float:
    """TF NAO's learning rate at controller step ``step``: constant under Adam; under SGD
    staircase decay after ``start_decay_step``."""
    if config.optimizer != "sgd" or step < config.start_decay_step:
        return config.lr
    return config.lr * config.decay_factor ** ((step - config.start_decay_step)
                                               // config.decay_steps)
