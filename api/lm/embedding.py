"""Word vectors for the RNN language models: ``w2v.pkl`` files and the embedding initialisation.

``w2v.pkl`` is a plain ``{word: vector}`` dict (vectors as lists of floats, as the original
wrote them; numpy arrays are accepted too). It is read with a restricted unpickler, so a
crafted file cannot run code: only dicts, strings, numbers, lists and numpy arrays load.
"""
from __future__ import annotations

import io
import pickle
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from api.errors import UserError

PREPROCESS_HINT = ("python searching/rnn/preprocess.py --data <corpus folder> --emsize <N> "
                   "--out <w2v.pkl>")


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
