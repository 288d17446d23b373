"""What is wrong with a file a user handed over, in words: a path too long to be a file, an
empty or truncated pickle, another kind of file (an image, a checkpoint), or text that is no
architecture. The loaders turn these into one-line errors."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

#: Leading bytes of files users hand over by mistake, and what they are.
MAGIC = ((b"\x89PNG", "a PNG image (the search's drawing?)"),
         (b"PK\x03\x04", "a zip archive (a torch checkpoint?)"),
         (b"\xff\xd8\xff", "a JPEG image"),
         (b"%PDF", "a PDF document"),
         (b"\x1f\x8b", "a gzip archive"))


class RefusedGlobal(pickle.UnpicklingError):
    """A restricted unpickler met a global it does not admit (the file holds other objects)."""


def is_file(spec: str) -> bool:
    """Whether ``spec`` names an existing file; False where it cannot be a path at all (a
    space string longer than a file name may be, a NUL byte)."""
    try:
        return Path(spec).is_file()
    except (OSError, ValueError):
        return False


def other_kind(data: bytes) -> Optional[str]:
    """What a file is when its bytes show another kind of file, else None."""
    if not data.strip():
        return "empty"
    for magic, what in MAGIC:
        if data.startswith(magic):
            return what
    return None


def pickle_problem(data: bytes, exc: BaseException) -> str:
    """Why unpickling ``data`` failed with ``exc``, in words."""
    text = str(exc)
    if isinstance(exc, EOFError) or "truncated" in text or "ran out of input" in text.lower():
        return (f"is truncated: the pickle ends after {len(data)} bytes (an interrupted copy "
                "or write); copy it again or use its .json twin")
    return f"is a damaged pickle ({type(exc).__name__}: {text})"
