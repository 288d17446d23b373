"""The language model both RNN cell families train in: embedding -> recurrent cell -> decoder
tied to the embedding, with DARTS's dropouts.

:class:`TiedEmbeddingLM` holds what the AutoShrink LM
(:class:`api.spaces.autoshrink_rnn.model.RNNModel`) and the DARTS/ENAS LM
(:class:`api.spaces.darts_rnn.model.CellLM`) share. A subclass calls
``__init__`` (the embedding), sets ``cell`` (``cell(x (T, B, ninp), h (B, nhid), x_mask,
h_mask)`` -> (outputs (T, B, nhid), new hidden)) and ``decoder_bias`` (ntoken,), then calls
:meth:`_init_embedding`, in that order (the order the parameters are drawn and listed in).
Dropouts, in training mode only: ``dropout`` (cell outputs, locked), ``dropouth`` /
``dropoutx`` (the cell's h and x masks), ``dropouti`` (embedding outputs, locked), ``dropoute``
(whole words).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from api.errors import UserError
from api.lm.dropout import embedded_dropout, locked_dropout, mask2d
from api.lm.softmax_loss import linear_cross_entropy


class TiedEmbeddingLM(nn.Module):
    """Embedding -> ``self.cell`` -> decoder tied to the embedding (see the module doc)."""

    cell: nn.Module
    decoder_bias: torch.Tensor

    def __init__(self, ntoken: int, ninp: int, nhid: int, dropout: float, dropouth: float,
                 dropoutx: float, dropouti: float, dropoute: float) -> None:
        super().__init__()
        self.ntoken, self.ninp, self.nhid = ntoken, ninp, nhid
        self.dropout, self.dropouth, self.dropoutx = dropout, dropouth, dropoutx
        self.dropouti, self.dropoute = dropouti, dropoute
        self.encoder = nn.Embedding(ntoken, ninp)

    def _init_embedding(self, embedding: Optional[torch.Tensor], initrange: float) -> None:
        """Copy ``embedding`` (ntoken, ninp) into the encoder, else draw it ~ U(-r, r)."""
        with torch.no_grad():
            if embedding is not None:
                if tuple(embedding.shape) != (self.ntoken, self.ninp):
                    raise UserError(f"embedding matrix has shape {tuple(embedding.shape)}, "
                                    f"expected ({self.ntoken}, {self.ninp})")
                self.encoder.weight.copy_(embedding)
            else:
                self.encoder.weight.uniform_(-initrange, initrange)

    @property
    def decoder_weight(self) -> torch.Tensor:
        return self.encoder.weight  # tied

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return self.decoder_weight.new_zeros(batch_size, self.nhid)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor,
                generator: Optional[torch.Generator] = None):
        """(T, B) word ids -> (cell outputs (T, B, nhid) after output dropout, new hidden)."""
        out, _raw, new_hidden = self.forward_raw(inputs, hidden, generator)
        return out, new_hidden

    def forward_raw(self, inputs: torch.Tensor, hidden: torch.Tensor,
                    generator: Optional[torch.Generator] = None):
        """As ``forward``, also returning the raw (pre-dropout) cell outputs that the final
        training's temporal activation regularisation (TAR) needs: (dropped outputs, raw
        outputs, new hidden)."""
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


__all__ = ["TiedEmbeddingLM"]
