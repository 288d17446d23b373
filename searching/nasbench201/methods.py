"""The discrete methods on the NAS-Bench-201 table, each a function of a budget and a seeded RNG.

A cell is 6 op indices (edges in the benchmark string's order, ops in ``OPS`` order). A method
asks the :class:`~searching.nasbench201.budget.QueryBudget` for signals until it raises
:class:`~searching.nasbench201.budget.SearchOver`; every method answers the best queried cell
by signal (first of equals), so all are judged at equal distinct queries. Methods: random
search, REA and REINFORCE with the settings of AutoDL-Projects' NAS-Bench-201 scripts, and
AutoShrink's shrinking mapped to the table (restarting from new op draws while budget is left).

Fidelity notes: docs/fidelity/nasbench201.md.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from api.errors import UserError
from api.spaces.nasbench201.cell import EDGES, NUM_ARCHS, OPS
from api.benchmarks.nb201_lookup import NB201Lookup
from searching.nasbench201.budget import QueryBudget, SearchOver

N_EDGES, N_OPS = len(EDGES), len(OPS)


def random_search(budget: QueryBudget, rng: np.random.Generator) -> None:
    """Distinct cells drawn uniformly (a seeded permutation of all cells)."""
    for index in rng.permutation(NUM_ARCHS):
        budget.query_index(int(index))


def _mutate(ops: Sequence[int], rng: np.random.Generator) -> tuple:
    child = list(ops)
    edge = int(rng.integers(N_EDGES))
    new = int(rng.integers(N_OPS - 1))
    child[edge] = new + (new >= child[edge])  # any op but the current one
    return tuple(child)


def regularized_evolution(budget: QueryBudget, rng: np.random.Generator,
                          population: int = 10, sample_size: int = 3) -> None:
    """Real et al.'s aging evolution with NAS-Bench-201's population and sample size."""
    members: deque = deque()
    while len(members) < population:
        ops = tuple(int(o) for o in rng.integers(0, N_OPS, N_EDGES))
        members.append((ops, budget.query(ops)))
    while True:
        picks = rng.integers(0, len(members), sample_size)
        parent = max((members[int(i)] for i in picks), key=lambda m: m[1])
        child = _mutate(parent[0], rng)
        members.append((child, budget.query(child)))
        members.popleft()


class _Adam:
    """torch.optim.Adam's update (betas 0.9/0.999, eps 1e-8) on one numpy array."""

    def __init__(self, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = self.v = None
        self.t = 0

    def step(self, param: np.ndarray, grad: np.ndarray) -> None:
        b1, b2 = self.betas
        if self.m is None:
            self.m, self.v = np.zeros_like(param), np.zeros_like(param)
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        denom = np.sqrt(self.v) / np.sqrt(1 - b2 ** self.t) + self.eps
        param -= (self.lr / (1 - b1 ** self.t)) * self.m / denom


def reinforce(budget: QueryBudget, rng: np.random.Generator, lr: float = 0.001,
              ema_momentum: float = 0.9) -> None:
    """REINFORCE with a factorised softmax policy and a moving-average baseline; the
    gradient of log p(a) w.r.t. the logits is one_hot(a) - p, written out (no autograd)."""
    logits = 1e-3 * rng.standard_normal((N_EDGES, N_OPS))
    adam = _Adam(lr)
    num = den = 0.0
    rows = np.arange(N_EDGES)
    while True:
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = z / z.sum(axis=1, keepdims=True)
        u = rng.random(N_EDGES)
        actions = np.minimum((probs.cumsum(axis=1) < u[:, None]).sum(axis=1), N_OPS - 1)
        reward = budget.query(actions)
        num = ema_momentum * num + (1 - ema_momentum) * reward
        den = ema_momentum * den + (1 - ema_momentum)
        advantage = reward - num / den
        grad = probs.copy()                 # d(-log p(a) * adv)/d logits = (p - onehot) * adv
        grad[rows, actions] -= 1.0
        adam.step(logits, grad * advantage)


def shrink(budget: QueryBudget, rng: np.random.Generator, k: int = 10) -> None:
    """AutoShrink on the NB201 topology, restarted from new op draws while budget is left."""
    while True:
        ops = [int(o) for o in rng.integers(1, N_OPS, N_EDGES)]  # no 'none' at the start
        budget.query(ops)
        while any(ops):
            live = [e for e in range(N_EDGES) if ops[e]]
            order = [int(e) for e in rng.permutation(live)[:k]]
            scores = []
            for e in order:
                cand = list(ops)
                cand[e] = 0
                scores.append(budget.query(cand))
            ops[order[int(np.argmax(scores))]] = 0  # first of the best


#: method name -> (function, default settings)
METHODS: Dict[str, tuple] = {
    "rs": (random_search, {}),
    "rea": (regularized_evolution, {"population": 10, "sample_size": 3}),
    "reinforce": (reinforce, {"lr": 0.001, "ema_momentum": 0.9}),
    "shrink": (shrink, {"k": 10}),
}


def check_settings(method: str, settings: Dict[str, Any]) -> Dict[str, Any]:
    """The method's full settings (defaults filled in); a bad value is a UserError."""
    if method not in METHODS:
        raise UserError(f"unknown method {method!r} (methods: {', '.join(METHODS)})")
    full = dict(METHODS[method][1], **{k: v for k, v in settings.items() if v is not None})
    unknown = set(full) - set(METHODS[method][1])
    if unknown:
        raise UserError(f"--{sorted(unknown)[0]} does not apply to --method {method}")
    for name in ("population", "sample_size", "k"):
        if name in full and int(full[name]) < 1:
            raise UserError(f"--{name} must be at least 1, got {full[name]}")
    if "lr" in full and not full["lr"] > 0:
        raise UserError(f"--lr must be positive, got {full['lr']}")
    if "ema_momentum" in full and not 0 <= full["ema_momentum"] < 1:
        raise UserError(f"--ema_momentum must be in [0, 1), got {full['ema_momentum']}")
    return full


def check_budget(budget: int) -> int:
    if isinstance(budget, bool) or not 1 <= int(budget) <= NUM_ARCHS:
        raise UserError(f"--budget must be between 1 and the number of cells ({NUM_ARCHS}), "
                        f"got {budget}")
    return int(budget)


def run_method(method: str, evaluator: NB201Lookup, budget: int, seed: int,
               settings: Optional[Dict[str, Any]] = None,
               on_query: Optional[Callable[[Dict], None]] = None,
               replay: Sequence[Dict] = ()) -> QueryBudget:
    """One search: ``method`` with ``settings`` on ``evaluator`` until ``budget`` distinct
    cells are queried; returns the budget (its ``records`` and ``best``)."""
    full = check_settings(method, settings or {})
    ledger = QueryBudget(evaluator, check_budget(budget), on_query=on_query, replay=replay)
    try:
        METHODS[method][0](ledger, np.random.default_rng(seed), **full)
    except SearchOver:
        pass
    return ledger
