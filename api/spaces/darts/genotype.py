"""DARTS's ``Genotype``: the architecture type of the DARTS CNN space (and, through
conversion, of the ENAS/NAO micro space).

``normal``/``reduce`` list ``(op, input)`` pairs, two consecutive pairs per intermediate node;
input 0 and 1 are the cell inputs c_{k-2} and c_{k-1}, input i >= 2 is intermediate node i-2.
``normal_concat``/``reduce_concat`` are the node indices (in the same numbering) whose outputs
are concatenated as the cell's output. Same field names and order as DARTS's namedtuple, so a
genotype copied from any DARTS-family codebase reads as is.
"""
from __future__ import annotations

from collections import namedtuple

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
