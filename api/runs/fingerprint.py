"""Content fingerprints of the data a search trains on, so ``--resume`` can refuse other data.

Paths may move between runs (``--data`` is a runtime flag); the content may not: a resumed
search that trained half its candidates on one proxy and half on another compares nothing.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

Part = Any  # a numpy array, a torch tensor, str, bytes or None


def content_fingerprint(*parts: Part) -> str:
    """A short hex digest of the parts' values, shapes and dtypes (order matters)."""
    h = hashlib.sha256()
    for part in parts:
        if part is None:
            h.update(b"<none>")
            continue
        if isinstance(part, str):
            part = part.encode("utf-8")
        if isinstance(part, bytes):
            h.update(b"bytes:%d:" % len(part) + part)
            continue
        if hasattr(part, "detach"):  # a torch tensor
            part = part.detach().cpu().numpy()
        arr = np.ascontiguousarray(part)
        h.update(f"array:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]
