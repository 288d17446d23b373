"""Deterministic deaths for resume tests: ``AUTOSHRINK_TEST_DIE_AT=<point>:<n>`` ends the
process with ``os._exit(137)`` (no cleanup, as kill -9) the n-th time a search passes
``<point>``. Inert when the variable is unset; the searches call :func:`maybe_die` at the
places a real kill would hurt most (after a journal append, after a state or checkpoint save).
"""
from __future__ import annotations

import os
from typing import Dict

DIE_AT_ENV = "AUTOSHRINK_TEST_DIE_AT"


def maybe_die(passes: Dict[str, int], name: str) -> None:
    """Count this pass through point ``name`` in ``passes``; die if the variable says so."""
    point, _, n = os.environ.get(DIE_AT_ENV, "").partition(":")
    if point == name:
        passes[name] = passes.get(name, 0) + 1
        if passes[name] == int(n):
            os._exit(137)
