"""Penn Treebank-format corpora for the RNN language models: vocabulary, token streams, batches.

A corpus folder holds ``train.txt``, ``valid.txt`` and ``test.txt`` in Mikolov's format: one
sentence per line, words separated by spaces; ``<eos>`` is appended to every line. The
vocabulary covers all three splits (as in DARTS and the original search), so validation words
never fall outside the embedding table. Batches are plain tensors resident on the training
device: no DataLoader and no per-step host work.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from api.errors import UserError

SPLITS = ("train", "valid", "test")
EOS = "<eos>"


class Dictionary:
    """Word <-> index, in order of first appearance."""

    def __init__(self) -> None:
        self.word2idx: Dict[str, int] = {}
        self.idx2word: List[str] = []

    def add_word(self, word: str) -> int:
        idx = self.word2idx.get(word)
        if idx is None:
            idx = self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return idx

    def __len__(self) -> int:
        return len(self.idx2word)

    def __contains__(self, word: str) -> bool:
        return word in self.word2idx


def read_lines(path: str) -> List[List[str]]:
    """Tokenised lines of one split, ``<eos>`` appended; a clear error if missing or empty."""
    if not os.path.isfile(path):
        raise UserError(f"{path} not found: a PTB-format corpus folder needs train.txt, "
                        "valid.txt and test.txt (build the proxy with python "
                        "searching/rnn/make_penn_proxy.py --ptb <PTB folder> --out <folder>)")
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.split() + [EOS] for line in f]
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc})") from exc
    if not any(len(words) > 1 for words in lines):
        raise UserError(f"{path} is empty: it must hold one sentence per line")
    return lines


class Corpus:
    """The three splits of a PTB-format folder as 1-D LongTensors of word indices."""

    def __init__(self, path: str, splits: Sequence[str] = SPLITS) -> None:
        if not os.path.isdir(path):
            raise UserError(f"--data {path}: corpus folder not found (expected a folder with "
                            "train.txt, valid.txt and test.txt in PTB format)")
        self.path = path
        self.dictionary = Dictionary()
        lines = {split: read_lines(os.path.join(path, f"{split}.txt")) for split in splits}
        for split in splits:  # the vocabulary covers every split, in file order
            for words in lines[split]:
                for w in words:
                    self.dictionary.add_word(w)
        for split in splits:
            ids = [self.dictionary.word2idx[w] for words in lines[split] for w in words]
            setattr(self, split, torch.tensor(ids, dtype=torch.long))

    @property
    def ntokens(self) -> int:
        return len(self.dictionary)


def batchify(data: torch.Tensor, batch_size: int,
             device: Optional[torch.device] = None) -> torch.Tensor:
    """Cut a token stream into ``batch_size`` parallel streams: shape (steps, batch_size).

    The tail that does not fill a whole column is dropped (the DARTS convention).
    """
    steps = data.size(0) // batch_size
    if steps < 2:
        raise UserError(f"a split of {data.size(0)} tokens is too small for batch size "
                        f"{batch_size}: lower --batch_size")
    data = data[: steps * batch_size].view(batch_size, steps).t().contiguous()
    return data.to(device) if device is not None else data


def get_batch(source: torch.Tensor, i: int, seq_len: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Inputs rows ``i .. i+seq_len-1`` and targets one row later (views, no copy)."""
    seq_len = min(seq_len, source.size(0) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len]


def unigram_perplexity(train: torch.Tensor, valid: torch.Tensor, ntokens: int) -> float:
    """Perplexity on ``valid`` of add-one-smoothed unigram frequencies from ``train``.

    The floor any language model must beat; reported next to the proxy's figures.
    """
    counts = torch.bincount(train, minlength=ntokens).double() + 1.0
    logp = torch.log(counts / counts.sum())
    return float(torch.exp(-logp[valid].mean()))
