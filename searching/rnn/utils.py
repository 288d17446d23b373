"""Small helpers of the RNN search: hidden-state detaching, DARTS dropouts, node ops, w2v.pkl.

``w2v.pkl`` is a plain ``{word: vector}`` dict (vectors as lists of floats, as the original
wrote them; numpy arrays are accepted too). It is read with a restricted unpickler, so a
crafted file cannot run code: only dicts, strings, numbers, lists and numpy arrays load.
"""
from __future__ import annotations

import io
import pickle
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from api.errors import UserError

RNN_OPS = ("tanh", "relu", "sigmoid", "identity")
PREPROCESS_HINT = ("python searching/rnn/preprocess.py --data <corpus folder> --emsize <N> "
                   "--out <w2v.pkl>")


def repackage_hidden(h):
    """Detach hidden state(s) from the graph that produced them (truncated BPTT)."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def mask2d(rows: int, cols: int, keep_prob: float, device=None,
           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A DARTS dropout mask: Bernoulli(keep_prob) / keep_prob, fixed over the time steps."""
    m = torch.rand(rows, cols, generator=generator, device=device)
    return torch.floor(m + keep_prob) / keep_prob


def locked_dropout(x: torch.Tensor, p: float, generator=None) -> torch.Tensor:
    """Variational dropout on a (T, B, D) tensor: one mask per sequence, shared over time."""
    if not p:
        return x
    return x * mask2d(x.size(1), x.size(2), 1.0 - p, x.device, generator).unsqueeze(0)


def embedded_dropout(weight: torch.Tensor, words: torch.Tensor, p: float,
                     generator=None) -> torch.Tensor:
    """Drop whole words (rows of the embedding) with probability ``p`` (DARTS ``dropoute``)."""
    if p:
        keep = mask2d(weight.size(0), 1, 1.0 - p, weight.device, generator)
        weight = weight * keep
    return torch.nn.functional.embedding(words, weight)


# ---------------------------------------------------------------------------- node ops
def draw_ops(num_nodes: int, rng: np.random.Generator) -> List[str]:
    """One op per node drawn uniformly from RNN_OPS with the seeded RNG (node 0's is ignored)."""
    return [RNN_OPS[int(i)] for i in rng.integers(0, len(RNN_OPS), num_nodes)]


def parse_ops(text: str, num_nodes: int) -> List[str]:
    """``--ops`` value: comma-separated ops for nodes 1..N-1 (or 0..N-1) -> full ops_def."""
    ops = [o.strip().lower() for o in text.split(",") if o.strip()]
    bad = sorted({o for o in ops if o not in RNN_OPS})
    if bad:
        raise UserError(f"--ops: unknown op(s) {', '.join(bad)}; choose from {', '.join(RNN_OPS)}")
    if len(ops) == num_nodes - 1:
        ops = ["identity"] + ops  # node 0's entry is ignored
    if len(ops) != num_nodes:
        raise UserError(f"--ops gives {len(ops)} ops; a {num_nodes}-node cell needs "
                        f"{num_nodes - 1} (nodes 1..{num_nodes - 1})")
    return ops


# ---------------------------------------------------------------------------- w2v.pkl
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _W2VUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def load_w2v(path: str) -> Dict[str, np.ndarray]:
    """Read a ``{word: vector}`` pickle safely; every vector must have the same length."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UserError(f"--emb_path {path}: embedding file not found; make it with "
                        f"{PREPROCESS_HINT} (or pass --emb_path none for random "
                        "initialisation)") from None
    except IsADirectoryError:
        raise UserError(f"--emb_path {path} is a folder, not a w2v.pkl file") from None
    try:
        obj = _W2VUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # refused globals, truncated or random bytes
        raise UserError(f"--emb_path {path} is not a w2v pickle ({type(exc).__name__}: {exc}); "
                        f"make one with {PREPROCESS_HINT}") from exc
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"--emb_path {path} is not a w2v pickle (expected a non-empty "
                        "{word: vector} dict)")
    vectors, dim = {}, None
    for word, vec in obj.items():
        try:
            arr = np.asarray(vec, dtype=np.float32)
        except (TypeError, ValueError):
            arr = None
        if not isinstance(word, str) or arr is None or arr.ndim != 1:
            raise UserError(f"--emb_path {path} is not a w2v pickle (entry {word!r} is not a "
                            "word with a vector of numbers)")
        if dim is None:
            dim = arr.shape[0]
        elif arr.shape[0] != dim:
            raise UserError(f"--emb_path {path} is damaged: vectors of sizes {dim} and "
                            f"{arr.shape[0]}")
        vectors[word] = arr
    return vectors


def embedding_matrix(words: Sequence[str], emsize: int, vectors: Optional[Dict[str, np.ndarray]],
                     seed: int, source: str = "--emb_path") -> torch.Tensor:
    """(len(words), emsize) init: the given vectors; U(-0.5, 0.5) (seeded) for the others."""
    rng = np.random.default_rng(seed)
    emb = rng.uniform(-0.5, 0.5, size=(len(words), emsize)).astype(np.float32)
    if vectors:
        dim = len(next(iter(vectors.values())))
        if dim != emsize:
            raise UserError(f"{source} holds {dim}-dimensional vectors but --emsize is "
                            f"{emsize}: rebuild it with preprocess.py --emsize {emsize} or "
                            f"pass --emsize {dim}")
        for idx, w in enumerate(words):
            vec = vectors.get(w)
            if vec is not None:
                emb[idx] = vec
    return torch.from_numpy(emb)
