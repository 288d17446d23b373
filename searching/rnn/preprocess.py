"""Write ``w2v.pkl``, the word vectors that initialise the RNN search's embedding.

    python searching/rnn/preprocess.py --data ./data/penn_proxy --emsize 100 \
        --out ./searching/rnn/w2v.pkl [--vectors glove.6B.100d.txt]

With ``--vectors`` (a GloVe or word2vec text file) the vectors come from that file through
gensim ``KeyedVectors``; without, gensim ``Word2Vec`` is trained on the training split, so it
works offline. The pickle is a plain ``{word: [floats]}`` dict covering the whole corpus
vocabulary (the original's format); words without a vector get U(-0.5, 0.5) from ``--seed``.
"""
from __future__ import annotations

import argparse
import os
import pickle
import zlib
from typing import Dict, List, Optional, Sequence

import numpy as np

from api.runs.atomic_io import atomic_write_bytes
from api.errors import UserError, run_cli
from api.lm.data import Corpus, read_lines


def _stable_hash(text: str) -> int:
    """gensim seeds vectors with a string hash; Python's is salted per process."""
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(sentences: List[List[str]], emsize: int, seed: int, epochs: int = 5,
                   window: int = 5):
    """CBOW Word2Vec on the sentences; one worker thread, so the same seed gives the same vectors."""
    from gensim.models import Word2Vec

    model = Word2Vec(sentences=sentences, vector_size=emsize, window=window, min_count=1,
                     workers=1, seed=seed, epochs=epochs, hashfxn=_stable_hash)
    return model.wv


def load_vectors(path: str):
    """GloVe (no header) or word2vec text format, told apart by the first line."""
    from gensim.models import KeyedVectors

    if not os.path.isfile(path):
        raise UserError(f"--vectors {path}: file not found (a GloVe or word2vec text file, "
                        "e.g. glove.6B.100d.txt)")
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().split()
    no_header = not (len(first) == 2 and all(tok.isdigit() for tok in first))
    try:
        return KeyedVectors.load_word2vec_format(path, binary=False, no_header=no_header)
    except (ValueError, UnicodeDecodeError, EOFError) as exc:
        raise UserError(f"--vectors {path} is not a GloVe/word2vec text file ({exc})") from exc


def build_w2v(words: Sequence[str], emsize: int, keyed, seed: int) -> Dict[str, List[float]]:
    """``{word: vector}`` for every word; missing ones get seeded U(-0.5, 0.5)."""
    if keyed is not None and keyed.vector_size != emsize:
        raise UserError(f"the vectors have {keyed.vector_size} dimensions but --emsize is "
                        f"{emsize}: pass --emsize {keyed.vector_size} or other vectors")
    rng = np.random.default_rng(seed)
    fallback = rng.uniform(-0.5, 0.5, size=(len(words), emsize)).astype(np.float32)
    out = {}
    for idx, word in enumerate(words):
        vec = keyed[word] if keyed is not None and word in keyed.key_to_index else fallback[idx]
        out[word] = [float(v) for v in np.asarray(vec, dtype=np.float32)]
    return out


def preprocess(data: str, emsize: int, out: str, vectors: Optional[str] = None, seed: int = 0,
               epochs: int = 5) -> Dict[str, int]:
    """Build and atomically write w2v.pkl; returns counts for the summary line."""
    if emsize < 1:
        raise UserError(f"--emsize must be at least 1, got {emsize}")
    corpus = Corpus(data)
    words = corpus.dictionary.idx2word
    if vectors:
        keyed = load_vectors(vectors)
    else:
        keyed = train_word2vec(read_lines(os.path.join(data, "train.txt")), emsize, seed, epochs)
    w2v = build_w2v(words, emsize, keyed, seed)
    atomic_write_bytes(out, pickle.dumps(w2v, protocol=4))
    found = sum(1 for w in words if w in keyed.key_to_index)
    return {"words": len(words), "with_vector": found, "random": len(words) - found}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="./data/penn_proxy",
                   help="PTB-format corpus folder (train.txt, valid.txt, test.txt)")
    p.add_argument("--emsize", type=int, default=100, help="vector size")
    p.add_argument("--out", default="./searching/rnn/w2v.pkl", help="output pickle")
    p.add_argument("--vectors", default=None,
                   help="GloVe/word2vec text file; omitted: train Word2Vec on train.txt")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds Word2Vec and the vectors of words without one")
    p.add_argument("--epochs", type=int, default=5, help="Word2Vec training epochs")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    counts = preprocess(args.data, args.emsize, args.out, args.vectors, args.seed, args.epochs)
    source = args.vectors or f"Word2Vec trained on {os.path.join(args.data, 'train.txt')}"
    print(f"wrote {args.out}: {counts['words']} words x {args.emsize} "
          f"({counts['with_vector']} from {source}, {counts['random']} random U(-0.5, 0.5))")
    if not args.vectors:
        print("note: Word2Vec vectors from a small corpus can make the proxy worse than random "
              "initialisation (penn_proxy: val ppl 590.7 vs 427-438 with --emb_path none); "
              "pretrained vectors (--vectors glove.6B.100d.txt) are the paper's setting")


__all__ = ["preprocess", "build_w2v", "load_vectors", "train_word2vec"]

if __name__ == "__main__":
    run_cli(main)
