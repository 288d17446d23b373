"""Scores that trade quality against cost; the loop keeps the candidate with the best score.

Both paper metrics are here with their efficiency weight as a parameter, and any callable
``(result) -> float`` may replace them (for example a latency term). A failed, diverged or
non-finite result scores ``-inf`` and can never be chosen.
"""
from __future__ import annotations

import math
from typing import Callable

from api.search.evaluator import Result

Objective = Callable[[Result], float]


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


class CNNObjective:
    """``acc - weight * (log10(MACs) - 6)`` with ``acc`` a fraction (paper: weight 0.1)."""

    def __init__(self, weight: float = 0.1) -> None:
        self.weight = weight

    def __call__(self, result: Result) -> float:
        acc = result.metrics.get("accuracy")
        if not result.ok or not _finite(acc) or not result.macs or result.macs <= 0:
            return -math.inf
        return float(acc - self.weight * (math.log10(result.macs) - 6))


class RNNObjective:
    """``(200 - ppl) * 0.25 - weight * (log10(FLOPs) - 6)``, FLOPs = edges * nhid^2.

    FLOPs are floored at ``min_flops``; the search passes one edge's nhid^2. The empty cell
    still runs the cell's input transform every step, so it is not free: with the old floor of
    1 FLOP it scored log10(nhid^2) points (4 at nhid 100, about 16 perplexity points) above a
    one-edge cell of the same perplexity, and random search, which draws it often, picked it
    for its cost alone.
    """

    def __init__(self, weight: float = 1.0, ppl_ref: float = 200.0, ppl_scale: float = 0.25,
                 min_flops: float = 1.0) -> None:
        self.weight, self.ppl_ref, self.ppl_scale = weight, ppl_ref, ppl_scale
        self.min_flops = min_flops

    def __call__(self, result: Result) -> float:
        ppl = result.metrics.get("perplexity")
        if not result.ok or not _finite(ppl):
            return -math.inf
        flops = max(float(result.macs), self.min_flops, 1.0)
        return float((self.ppl_ref - ppl) * self.ppl_scale - self.weight * (math.log10(flops) - 6))
