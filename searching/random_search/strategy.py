"""Random search: the baseline strategy every NAS result should beat, at AutoShrink's budget.

:class:`RandomSearch` samples random subgraphs of the initial complete DAG (same ops_def, drawn
from the same seed as AutoShrink's): each sample keeps every edge with a probability that is
itself drawn uniformly, so all cell sizes are visited; graphs already evaluated are not drawn
again. It runs on the shared search loop (:class:`searching.cell_search.CellSearch`), like
AutoShrink (:mod:`searching.shrink`). The CLI is ``searching/random_search/random_search.py``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import numpy as np

from api.runs.atomic_io import read_jsonl
from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from searching.cell_search import CellSearch
from searching.shrink import autoshrink_budget

MAX_DRAWS = 200  # attempts to draw a not-yet-seen graph before accepting a repeat


@dataclass
class RandomConfig:
    k: int = 10          # candidates per logged step
    budget: int = 100    # candidate trainings in all
    seed: int = 0

    def validate(self) -> None:
        if self.k < 1:
            raise UserError(f"--max_steps (candidates per step) must be at least 1, got {self.k}")
        if self.budget < 1:
            raise UserError(f"--budget must be at least 1, got {self.budget}")


def count_trainings(run_dir: str) -> int:
    """Trained (not cached) candidates of a finished search."""
    path = os.path.join(run_dir, "candidates.jsonl")
    if not os.path.isfile(path):
        raise UserError(f"--match_run: {path} not found (point it at a finished search folder)")
    return sum(r.get("status") != "cached" for r in read_jsonl(path))


class RandomSearch(CellSearch):
    """Sample random subgraphs of the initial DAG; keep the best score seen."""

    x_label = "candidates trained"
    progress_unit = "cand"

    def _setting_values(self) -> Dict[str, Any]:
        return {"seed": self.config.seed, "max_steps": self.config.k,
                "budget": self.config.budget}

    def _init_strategy(self, graph: CellGraph) -> Dict[str, Any]:
        return {"planned": 0}

    def _finished(self) -> bool:
        return self.state["planned"] >= self.config.budget

    def _progress(self) -> Tuple[int, int]:
        return self.state["planned"], self.config.budget

    def _planned_trainings(self) -> int:
        return self.config.budget

    def _plan_text(self) -> str:
        return f"random search, budget {self.config.budget}: {super()._plan_text()}"

    def _propose(self, rng: np.random.Generator, step: int):
        full = CellGraph.from_dict(self.state["initial"])
        seen = {r["hash"] for r in self.state["records"]}
        n = min(self.config.k, self.config.budget - self.state["planned"])
        for c in range(n):
            for _ in range(MAX_DRAWS):
                keep = rng.random(full.mask.shape) < rng.random()
                cand = full.with_mask(full.mask * keep).optimize()
                if cand.canonical_hash() not in seen:
                    break
            seen.add(cand.canonical_hash())
            yield f"s{step}-c{c}", cand, {}
        self.state["planned"] += n

    def _advance(self, recs: List[Dict], best: Dict, cands: Dict[str, CellGraph],
                 entry: Dict[str, Any]) -> CellGraph:
        entry.update(x=self.state["planned"], edges=best["edges"])
        entry["summary"] = f"trained {self.state['planned']:4d} | best edges {best['edges']:3d}"
        return cands[best["key"]]


__all__ = ["MAX_DRAWS", "RandomConfig", "RandomSearch", "autoshrink_budget", "count_trainings"]
