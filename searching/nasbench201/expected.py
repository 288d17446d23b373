"""What random search should average, straight from the table (no search run): the check that
the harness's random search is random search.

B distinct cells are drawn uniformly from N; the answer is the best by signal, the first drawn
of equal signals. Group the cells by signal value; the answer lies in the group of value v with
probability P(max <= v) - P(max < v) = [C(n_<=v, B) - C(n_<v, B)] / C(N, B), and within that
group every member is equally likely to be drawn first, so the expected reported figure is
the sum over groups of that probability times the group's mean reported figure.
"""
from __future__ import annotations

import math

import numpy as np


def _log_comb(n: np.ndarray, k: int) -> np.ndarray:
    """log C(n, k) elementwise; -inf where n < k."""
    n = np.asarray(n, dtype=np.float64)
    out = np.full(n.shape, -np.inf)
    ok = n >= k
    lg = np.vectorize(math.lgamma)
    if ok.any():
        out[ok] = lg(n[ok] + 1) - lg(k + 1) - lg(n[ok] - k + 1)
    return out


def expected_random_search(signal: np.ndarray, reported: np.ndarray, budget: int) -> float:
    """E[reported figure of the best-by-signal cell among ``budget`` distinct uniform cells]."""
    signal, reported = np.asarray(signal, float), np.asarray(reported, float)
    n = signal.size
    values, group, counts = np.unique(signal, return_inverse=True, return_counts=True)
    group_mean = np.bincount(group, weights=reported) / counts
    at_most = np.cumsum(counts)
    below = at_most - counts
    total = _log_comb(np.array([n]), budget)[0]
    p = np.exp(_log_comb(at_most, budget) - total) - np.exp(_log_comb(below, budget) - total)
    return float(np.dot(p, group_mean))
