"""The one weight-sharing trainer on text: a PTB-format corpus instead of the image halves.

:class:`TextOneShotSearch` is :class:`~searching.oneshot.trainer.OneShotSearch` with its four
data hooks replaced; checkpoints, --resume, outputs and plots are the trainer's own. As DARTS's
``rnn/train_search.py``: weights train on the train split and the architecture on the valid
split, each batchified into ``batch_size`` streams, with DARTS's variable window lengths;
hidden states are carried across windows and zeroed each epoch; after each epoch the supernet
is evaluated on the whole valid split (DARTS's "valid ppl"). Window lengths come from a seeded
generator saved in the checkpoint, so a resumed search draws the same windows.

Fidelity notes: docs/fidelity/darts.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List

import torch
from torch import nn

from api.lm.data import Corpus, batchify, get_batch
from api.lm.softmax_loss import linear_cross_entropy
from searching.oneshot.trainer import OneShotSearch

#: DARTS: a window of bptt with probability 0.95, else of bptt / 2.
FULL_WINDOW_PROB = 0.95


@dataclass
class TextData:
    train: torch.Tensor     # (rows, batch_size): the weights' stream
    search: torch.Tensor    # (rows, batch_size): the architecture's (the valid split)
    valid: torch.Tensor     # (rows, eval_batch_size): the per-epoch evaluation
    ntokens: int
    fingerprint: Dict[str, Any]


class TextFeed:
    """The text search's batches (the interface of :class:`~searching.oneshot.trainer.
    ImageFeed`); the epoch state is ``{"pos": i}``, advanced by :meth:`batch`."""

    def __init__(self, search: "TextOneShotSearch", data: TextData) -> None:
        self.search, self.data, self.bptt = search, data, search.bptt
        self.len_gen = torch.Generator().manual_seed(search.config.seed + 2)

    def epoch_state(self, epoch: int) -> Dict[str, int]:
        return {"pos": 0}

    def steps(self, state) -> int:
        """An estimate (the windows' lengths are drawn as the epoch goes)."""
        mean = FULL_WINDOW_PROB * self.bptt + (1 - FULL_WINDOW_PROB) * int(self.bptt / 2)
        return math.ceil((self.data.train.size(0) - 2) / max(mean, 1.0))

    def done(self, state, step: int) -> bool:
        return state["pos"] >= self.data.train.size(0) - 2

    def batch(self, state, step: int):
        i = int(state["pos"])
        full = float(torch.rand((), generator=self.len_gen)) < FULL_WINDOW_PROB
        seq_len = max(1, self.bptt if full else int(self.bptt / 2))
        xw, yw = get_batch(self.data.train, i, seq_len)
        search = self.data.search
        xa, ya = get_batch(search, i % (search.size(0) - 1), self.bptt)
        state["pos"] = i + seq_len
        return (xw, yw), (xa, ya), yw.numel(), ya.numel()

    @torch.no_grad()
    def epoch_end(self, net: nn.Module, means: Dict[str, float]) -> Dict[str, Any]:
        """The steps' perplexities (``train_ppl``, ``val_ppl``: the architecture windows', in
        training mode) and DARTS's per-epoch evaluation: the valid split, eval mode, batch
        10 (``eval_loss``, ``eval_ppl``)."""
        net.eval()
        source = self.data.valid
        hidden = net.init_hidden(source.size(1))
        total, count = 0.0, 0
        for i in range(0, source.size(0) - 1, self.bptt):
            x, y = get_batch(source, i, self.bptt)
            out, hidden = net(x, hidden)
            loss = linear_cross_entropy(out.reshape(-1, net.nhid), net.decoder_weight,
                                        net.decoder_bias, y.reshape(-1))
            total += float(loss) * y.numel()
            count += y.numel()
        net.train()
        loss = total / count
        return {**{f"{k}_ppl": _ppl(means[f"{k}_loss"]) for k in ("train", "val")
                   if f"{k}_loss" in means},
                "eval_loss": loss, "eval_ppl": _ppl(loss)}

    def state_dict(self) -> Dict[str, Any]:
        return {"length_generator": self.len_gen.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.len_gen.set_state(state["length_generator"])


def _ppl(loss):
    return None if loss is None else math.exp(min(float(loss), 700.0))


class TextOneShotSearch(OneShotSearch):
    """A weight-sharing search of an RNN cell space on a PTB-format corpus (``config.data``):
    the trainer with text data (see the module doc). ``bptt`` is the window length,
    ``eval_batch_size`` the per-epoch evaluation's batch size."""

    def __init__(self, *args: Any, bptt: int = 35, eval_batch_size: int = 10,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bptt, self.eval_batch_size = int(bptt), int(eval_batch_size)

    def load_data(self) -> TextData:
        cfg = self.config
        corpus = Corpus(cfg.data)
        train = batchify(corpus.train, cfg.batch_size, self.device)
        search = batchify(corpus.valid, cfg.batch_size, self.device)
        valid = batchify(corpus.valid, self.eval_batch_size, self.device)
        fingerprint = {"ntokens": corpus.ntokens, "train_tokens": int(corpus.train.numel()),
                       "valid_tokens": int(corpus.valid.numel()),
                       "train_sum": int(corpus.train.sum()), "valid_sum": int(corpus.valid.sum()),
                       "bptt": self.bptt, "eval_batch_size": self.eval_batch_size}
        return TextData(train, search, valid, corpus.ntokens, fingerprint)

    def build_supernet(self, data: TextData) -> nn.Module:
        return self.space.supernet(data.ntokens, **self.config.supernet)

    def make_feed(self, data: TextData) -> TextFeed:
        return TextFeed(self, data)

    def epoch_lr(self, epoch: int) -> float:
        return self.config.lr  # DARTS's RNN search: no schedule

    def summary_extra(self, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        last = history[-1]
        return {"final_train_ppl": last.get("train_ppl"), "final_val_ppl": last.get("val_ppl"),
                "final_eval_ppl": last.get("eval_ppl"),
                "best_eval_ppl": min((r["eval_ppl"] for r in history if "eval_ppl" in r),
                                     default=None)}


__all__ = ["TextData", "TextFeed", "TextOneShotSearch"]
