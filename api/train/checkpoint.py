"""Training checkpoints: what a resumed run needs, written atomically, read safely.

A checkpoint is a plain dict (model, EMA, optimizer and scheduler state, epoch, step, RNG
states of every rank, the model spec). RNG states are stored as tensors and built-in types so
that loading uses ``torch.load(weights_only=True)``: a checkpoint cannot run code. ``last.pt``
is replaced after every epoch. Only the RNN trainer also keeps ``best.pt`` (best validation
loss; PTB has a separate test split); the CNN trainers select nothing on their evaluation
split, so their final ``last.pt`` is the model.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from api.runs.atomic_io import atomic_torch_save
from api.errors import UserError

LAST = "last.pt"
BEST = "best.pt"


def capture_rng() -> Dict[str, Any]:
    """This process's Python, NumPy, torch CPU and CUDA generator states."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    atomic_torch_save(path, state)


def load_checkpoint(path: Path, map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; damaged files give a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise UserError(f"checkpoint {path} is damaged or not an AutoShrink checkpoint "
                        f"({type(exc).__name__}): delete it or point to another one") from exc
    if not isinstance(state, dict) or "model" not in state or (
            "model_spec" not in state and "arch_network" not in state):  # api.train.arch_train
        raise UserError(f"{path} is not an AutoShrink training checkpoint")
    return state


def last_checkpoint(output: Path) -> Optional[Path]:
    path = Path(output) / LAST
    return path if path.is_file() else None
