"""The AutoShrink loop, written once for the CNN and the RNN search.

Starting from a (complete) DAG, each step trains up to k candidates, each the current graph
minus one edge (edges shuffled with the seeded RNG), scores them with the objective and keeps
the best; the search stops when ``round(E0 * keep_fraction)`` edges remain. It sees only an
:class:`~api.search.Evaluator`, an :class:`~api.search.Executor` and an objective, so it
knows nothing about CNNs or RNNs; state, journal and resume live in
:class:`~searching.cell_search.CellSearch`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import numpy as np

from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.spaces.dag.graph_io import save_graph
from searching.cell_search import CellSearch, SearchStalled, candidate_seed

__all__ = ["ShrinkConfig", "ShrinkSearch", "SearchStalled", "autoshrink_budget", "candidate_seed"]


def autoshrink_budget(e0: int, k: int, keep_fraction: float) -> int:
    """Candidate trainings (at most: cached twins train nothing) of an AutoShrink run that
    removes one edge per step from ``e0`` edges, trying up to ``k`` removals per step."""
    threshold = int(round(e0 * keep_fraction))
    return sum(min(k, e) for e in range(e0, threshold, -1))


@dataclass
class ShrinkConfig:
    k: int = 10                    # candidates per step (--max_steps)
    keep_fraction: float = 0.0     # stop when round(E0 * keep_fraction) edges remain
    seed: int = 0

    def validate(self) -> None:
        if self.k < 1:
            raise UserError(f"--max_steps (k, candidates per step) must be at least 1, got {self.k}")
        if not 0.0 <= self.keep_fraction < 1.0:
            raise UserError(f"--keep_fraction must be in [0, 1), got {self.keep_fraction}")


class ShrinkSearch(CellSearch):
    """AutoShrink: drop the edge whose removal scores best, one edge per step."""

    x_label = "edges left"
    progress_unit = "edge"

    def _setting_values(self) -> Dict[str, Any]:
        return {"seed": self.config.seed, "max_steps": self.config.k,
                "keep_fraction": self.config.keep_fraction}

    def _init_strategy(self, graph: CellGraph) -> Dict[str, Any]:
        e0 = graph.num_edges
        return {"e0": e0, "threshold": int(round(e0 * self.config.keep_fraction))}

    def _finished(self) -> bool:
        return self.graph.num_edges <= self.state["threshold"]

    def _planned_trainings(self) -> int:
        return autoshrink_budget(self.state["e0"], self.config.k, self.config.keep_fraction)

    def _plan_text(self) -> str:
        st = self.state
        steps = max(st["e0"] - st["threshold"], 0)
        return (f"{steps} steps (from {st['e0']} edges down to {st['threshold']}), up to "
                f"{self.config.k} candidates each: {super()._plan_text()}")

    def _progress(self) -> Tuple[int, int]:
        st = self.state
        return st["e0"] - self.graph.num_edges, max(st["e0"] - st["threshold"], 0)

    def _propose(self, rng: np.random.Generator, step: int):
        graph = self.graph
        edges = graph.edge_list
        order = rng.permutation(len(edges))
        for n in order[:min(self.config.k, len(edges))]:
            i, j = edges[n]
            yield f"s{step}-e{i}-{j}", graph.remove_edge(i, j), {"edge": [i, j]}

    def _advance(self, recs: List[Dict], best: Dict, cands: Dict[str, CellGraph],
                 entry: Dict[str, Any]) -> CellGraph:
        chosen = cands[best["key"]]
        entry.update(x=chosen.num_edges, edges=chosen.num_edges, removed_edge=best["edge"])
        entry["summary"] = (f"edges {chosen.num_edges:3d} | removed "
                            f"{best['edge'][0]}->{best['edge'][1]}")
        return chosen

    def _on_chosen(self, chosen: CellGraph) -> None:
        st = self.state
        st["graph"] = chosen.to_dict()
        ratio = chosen.num_edges / st["e0"] if st["e0"] else 0.0
        save_graph(chosen, os.path.join(self.root, f"graph-{ratio:.2f}"), png=self.plots)
