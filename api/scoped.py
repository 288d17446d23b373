"""Scoped changes to PyTorch's process-global settings.

Library code that needs a different intra-op thread count or ``cudnn.benchmark`` for a while
(one candidate, one kernel call) sets it with these context managers, which restore the
previous value on exit, exception included, so a caller's settings survive a search.

>>> import torch
>>> before = torch.get_num_threads()
>>> with torch_threads(1):
...     torch.get_num_threads()
1
>>> torch.get_num_threads() == before
True
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional


@contextlib.contextmanager
def torch_threads(threads: Optional[int]) -> Iterator[None]:
    """Run the block with ``threads`` CPU intra-op threads (``None`` or 0: unchanged)."""
    import torch

    before = torch.get_num_threads()
    change = bool(threads) and threads != before
    if change:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)


@contextlib.contextmanager
def cudnn_benchmark(enabled: Optional[bool]) -> Iterator[None]:
    """Run the block with ``torch.backends.cudnn.benchmark = enabled`` (``None``: unchanged).

    Unlike ``torch.backends.cudnn.flags(benchmark=...)``, the other cuDNN flags keep their
    current values (``flags`` resets each one it is not given to its default)."""
    import torch

    before = torch.backends.cudnn.benchmark
    if enabled is not None:
        torch.backends.cudnn.benchmark = bool(enabled)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


@contextlib.contextmanager
def torch_state() -> Iterator[None]:
    """Restore the thread count and ``cudnn.benchmark`` on exit, whatever the block set."""
    import torch

    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark
