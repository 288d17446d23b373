"""The AutoShrink loop, written once for the CNN and the RNN search.

Starting from a (complete) DAG, each step trains up to k candidates, each the current graph
minus one edge (shuffled with the seeded RNG), scores them with the objective and keeps the
best; it stops when ``round(E0 * keep_fraction)`` edges remain. The loop knows nothing about
CNNs or RNNs: it sees an :class:`~api.search.Evaluator`, an :class:`~api.search.Executor`
and an objective.

Resume: the whole search state (graph, history, RNG state, the step's plan and finished
candidates) is written atomically to ``state.json`` after every candidate, so a killed
search restarted with ``resume=True`` redoes at most the candidate that was in flight and
ends with exactly the result of an uninterrupted run. Candidate seeds derive from the search
seed and the candidate's canonical hash, so a retrained candidate gets the same score.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from tqdm import tqdm

from api.atomic_io import append_jsonl, atomic_write_json, write_jsonl
from api.errors import UserError
from api.graph import CellGraph
from api.graph_io import save_graph
from api.search.evaluator import Evaluator, Result, Task
from api.search.executors import Executor, InProcessExecutor
from api.search.objectives import Objective
from api.search import report

STATE_FILE = "state.json"
CANDIDATES_FILE = "candidates.jsonl"
STATE_VERSION = 1


class SearchStalled(UserError):
    """Every candidate of a step failed; the state is kept for --resume."""


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


def candidate_seed(search_seed: int, graph_hash: str) -> int:
    """Seed of a candidate's training: fixed by the search seed and the candidate's graph."""
    digest = hashlib.sha256(f"{search_seed}:{graph_hash}".encode()).hexdigest()
    return int(digest[:8], 16)


def _score_key(score: Optional[float]) -> float:
    return -math.inf if score is None else score


class ShrinkSearch:
    """One AutoShrink search rooted in a folder; ``run()`` returns the best graph."""

    def __init__(self, root: str, evaluator: Evaluator, objective: Objective,
                 config: ShrinkConfig, settings: Optional[Dict[str, Any]] = None,
                 executor: Optional[Executor] = None, plots: bool = True,
                 progress: bool = True) -> None:
        config.validate()
        self.root = root
        self.evaluator = evaluator
        self.objective = objective
        self.config = config
        self.settings = dict(settings or {})
        self.executor = executor or InProcessExecutor()
        self.plots = plots
        self.progress = progress
        self.state: Dict[str, Any] = {}

    # ------------------------------------------------------------------ state
    @property
    def state_path(self) -> str:
        return os.path.join(self.root, STATE_FILE)

    @staticmethod
    def saved_settings(root: str) -> Dict[str, Any]:
        """Settings of the search saved in ``root`` ({} when there is none or it is damaged)."""
        try:
            with open(os.path.join(root, STATE_FILE), encoding="utf-8") as f:
                return dict(json.load(f).get("settings") or {})
        except (OSError, ValueError, AttributeError):
            return {}

    def start(self, make_initial: Callable[[np.random.Generator], CellGraph]) -> None:
        """Begin a new search; ``make_initial`` draws the initial graph with the search RNG."""
        if os.path.exists(self.state_path):
            raise UserError(f"{self.root} already holds a search: pass --resume to continue it, "
                            "or choose another output folder")
        os.makedirs(self.root, exist_ok=True)
        rng = np.random.default_rng(self.config.seed)
        graph = make_initial(rng)
        e0 = graph.num_edges
        self.state = {
            "version": STATE_VERSION, "settings": self.settings, "seed": self.config.seed,
            "k": self.config.k, "keep_fraction": self.config.keep_fraction,
            "initial": graph.to_dict(), "graph": graph.to_dict(), "e0": e0,
            "threshold": int(round(e0 * self.config.keep_fraction)), "step": 0,
            "rng": rng.bit_generator.state, "plan": None, "records": [], "history": [],
            "best": None, "done": False, "seconds": 0.0,
        }
        self._save_state()
        write_jsonl(os.path.join(self.root, CANDIDATES_FILE), [])

    def resume(self, force: bool = False) -> None:
        """Load the state of the search in ``root``; refuse different settings unless forced."""
        if not os.path.isdir(self.root):
            raise UserError(f"--resume: {self.root} does not exist")
        if not os.path.exists(self.state_path):
            raise UserError(f"--resume: {self.root} holds no search state ({STATE_FILE} missing); "
                            "run without --resume to start a search")
        try:
            with open(self.state_path, encoding="utf-8") as f:
                state = json.load(f)
            state["graph"], state["rng"], state["records"], state["history"]  # noqa: B018
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise UserError(f"--resume: {self.state_path} is damaged ({type(exc).__name__}); "
                            "start a new search in another folder") from exc
        if state.get("version") != STATE_VERSION:
            raise UserError(f"--resume: {self.state_path} has state version "
                            f"{state.get('version')!r}, expected {STATE_VERSION}")
        if not force:
            self._check_settings(state)
        self.state = state
        plan = state.get("plan")
        if plan:  # retry candidates that failed before the interruption
            plan["results"] = {k: r for k, r in plan["results"].items() if r["status"] != "failed"}
        # The journal may hold a line the state never recorded (killed in between): rewrite it.
        self._rewrite_journal()

    def _check_settings(self, state: Dict[str, Any]) -> None:
        saved = dict(state.get("settings") or {}, seed=state.get("seed"), max_steps=state.get("k"),
                     keep_fraction=state.get("keep_fraction"))
        now = dict(self.settings, seed=self.config.seed, max_steps=self.config.k,
                   keep_fraction=self.config.keep_fraction)
        for key in sorted(set(saved) | set(now)):
            if saved.get(key) != now.get(key):
                raise UserError(f"--resume: --{key} is {now.get(key)!r} but the search in "
                                f"{self.root} used {saved.get(key)!r}; pass the same flags "
                                "(or --force to continue anyway)")

    def _save_state(self) -> None:
        atomic_write_json(self.state_path, self.state)

    def _all_records(self) -> List[Dict[str, Any]]:
        records = list(self.state["records"])
        plan = self.state.get("plan")
        if plan:
            order = {t["key"]: n for n, t in enumerate(plan["tasks"])}
            records += sorted(plan["results"].values(), key=lambda r: order[r["key"]])
        return records

    def _rewrite_journal(self) -> None:
        write_jsonl(os.path.join(self.root, CANDIDATES_FILE), self._all_records())

    # ------------------------------------------------------------------ loop
    @property
    def graph(self) -> CellGraph:
        return CellGraph.from_dict(self.state["graph"])

    @property
    def best(self) -> Optional[CellGraph]:
        best = self.state.get("best")
        return CellGraph.from_dict(best) if best else None

    def run(self) -> CellGraph:
        if not self.state:
            raise RuntimeError("call start() or resume() before run()")
        st = self.state
        total = max(st["e0"] - st["threshold"], 0)
        bar = tqdm(total=total, initial=st["e0"] - self.graph.num_edges, desc="search",
                   unit="edge", disable=not self.progress, dynamic_ncols=True)
        try:
            while not st["done"]:
                if self.graph.num_edges <= st["threshold"]:
                    st["done"] = True
                    self._save_state()
                    break
                before = self.graph.num_edges
                self._run_step()
                bar.update(before - self.graph.num_edges)
        finally:
            bar.close()
        if st["best"] is None:  # nothing to shrink: the initial graph is the answer
            st["best"] = st["graph"]
            self._save_state()
            save_graph(self.graph, os.path.join(self.root, "graph-best"), png=self.plots)
        return self.best

    def _plan_step(self) -> Dict[str, Any]:
        st = self.state
        rng = np.random.default_rng()
        rng.bit_generator.state = st["rng"]
        graph = self.graph
        edges = graph.edge_list
        order = rng.permutation(len(edges))
        chosen = [edges[i] for i in order[:min(self.config.k, len(edges))]]
        step = st["step"] + 1
        tasks = []
        for i, j in chosen:
            cand = graph.remove_edge(i, j)
            h = cand.canonical_hash()
            tasks.append({"key": f"s{step}-e{i}-{j}", "edge": [i, j], "hash": h,
                          "seed": candidate_seed(self.config.seed, h)})
        st["rng"] = rng.bit_generator.state
        st["plan"] = {"step": step, "tasks": tasks, "results": {}}
        self._save_state()
        return st["plan"]

    def _record(self, task: Dict[str, Any], result: Result, status: str, step: int,
                cand: CellGraph) -> Dict[str, Any]:
        score = self.objective(result) if result.ok else -math.inf
        rec = {
            "step": step, "key": task["key"], "edge": task["edge"], "hash": task["hash"],
            "score": score if math.isfinite(score) else None,
            "macs": result.macs, "params": result.params, "seconds": round(result.seconds, 3),
            "epochs": result.epochs, "status": status if result.ok else "failed",
            "edges": cand.num_edges, "seed": task["seed"],
        }
        rec[self.evaluator.metric] = result.metrics.get(self.evaluator.metric)
        for name, value in result.metrics.items():
            rec.setdefault(name, value)
        if result.error:
            rec["error"] = result.error
        return rec

    def _run_step(self) -> None:
        st = self.state
        plan = st["plan"] if st.get("plan") else self._plan_step()
        step, graph = plan["step"], self.graph
        cands = {t["key"]: graph.remove_edge(*t["edge"]) for t in plan["tasks"]}
        known = {r["hash"]: r for r in self._all_records() if r["status"] != "failed"}
        to_train, waiting = [], []
        for t in plan["tasks"]:
            if t["key"] in plan["results"]:
                continue
            if t["hash"] in known or any(t["hash"] == o["hash"] for o in to_train):
                waiting.append(t)
            else:
                to_train.append(t)
        bar = tqdm(total=len(plan["tasks"]), initial=len(plan["results"]), leave=False,
                   desc=f"step {step} candidates", unit="cand", disable=not self.progress,
                   dynamic_ncols=True)
        def show_epoch(row: Dict[str, Any]) -> None:
            bar.set_postfix_str(" ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in row.items() if k != "seconds"))

        self.evaluator.epoch_callback = show_epoch if self.progress else None
        t0 = time.perf_counter()
        tasks = [Task(t["key"], cands[t["key"]], t["seed"]) for t in to_train]
        by_key = {t["key"]: t for t in to_train}
        for task, result in self.executor.run(self.evaluator, tasks):
            rec = self._record(by_key[task.key], result, "ok", step, task.graph)
            self._finish_candidate(plan, rec)
            if rec["status"] == "ok":
                known[rec["hash"]] = rec
            bar.update(1)
        for t in waiting:  # prunes to a graph already evaluated: reuse its result
            twin = known.get(t["hash"])
            if twin is None:  # its twin failed: train this one after all
                res = next(iter(self.executor.run(self.evaluator, [
                    Task(t["key"], cands[t["key"]], t["seed"])])))[1]
                rec = self._record(t, res, "ok", step, cands[t["key"]])
            else:
                rec = {**twin, "step": step, "key": t["key"], "edge": t["edge"], "seconds": 0.0,
                       "status": "cached"}
            self._finish_candidate(plan, rec)
            bar.update(1)
        bar.close()
        st["seconds"] += time.perf_counter() - t0
        self._select(plan, cands)

    def _finish_candidate(self, plan: Dict[str, Any], rec: Dict[str, Any]) -> None:
        append_jsonl(os.path.join(self.root, CANDIDATES_FILE), rec)
        plan["results"][rec["key"]] = rec
        self._save_state()

    def _select(self, plan: Dict[str, Any], cands: Dict[str, CellGraph]) -> None:
        st = self.state
        order = [t["key"] for t in plan["tasks"]]
        recs = [plan["results"][k] for k in order]
        ok = [r for r in recs if r["score"] is not None]
        if not ok:
            errors = "; ".join(sorted({str(r.get("error", "no score"))[:120] for r in recs}))
            raise SearchStalled(f"every candidate of step {plan['step']} failed ({errors}); "
                                f"the state in {self.root} is kept: fix the cause and --resume")
        best = max(ok, key=lambda r: r["score"])  # first of equal scores, in plan order
        metric = self.evaluator.metric
        values = [r[metric] for r in ok if r.get(metric) is not None]
        pick = max if self.evaluator.higher_is_better else min
        chosen = cands[best["key"]]
        chosen.score, chosen.macs, chosen.params = best["score"], best["macs"], best["params"]
        setattr(chosen, metric, best.get(metric))
        chosen.step, chosen.seconds = plan["step"], round(st["seconds"], 1)
        n_cached = sum(r["status"] == "cached" for r in recs)
        entry = {
            "step": plan["step"], "edges": chosen.num_edges, "removed_edge": best["edge"],
            "best_score": best["score"], "mean_score": float(np.mean([r["score"] for r in ok])),
            "best_metric": pick(values) if values else None,
            "mean_metric": float(np.mean(values)) if values else None,
            "mean_macs": float(np.mean([r["macs"] for r in ok])),
            "n_ok": len(ok) - n_cached, "n_cached": n_cached, "n_failed": len(recs) - len(ok),
            "seconds": round(st["seconds"], 1),
        }
        entry["summary"] = (
            f"step {entry['step']:3d} | edges {entry['edges']:3d} | removed "
            f"{best['edge'][0]}->{best['edge'][1]} | best score {entry['best_score']:.4f} | "
            f"mean score {entry['mean_score']:.4f} | best {metric} {_fmt(entry['best_metric'])} | "
            f"mean MACs {entry['mean_macs'] / 1e6:.2f}M | ok {entry['n_ok']} cached "
            f"{entry['n_cached']} failed {entry['n_failed']} | {entry['seconds']:.0f}s")
        st["records"].extend(recs)
        st["history"].append(entry)
        st["graph"] = chosen.to_dict()
        st["step"] = plan["step"]
        st["plan"] = None
        ratio = chosen.num_edges / st["e0"] if st["e0"] else 0.0
        save_graph(chosen, os.path.join(self.root, f"graph-{ratio:.2f}"), png=self.plots)
        if st["best"] is None or best["score"] > _score_key(st["best"]["meta"]["score"]):
            st["best"] = chosen.to_dict()
            save_graph(chosen, os.path.join(self.root, "graph-best"), png=self.plots)
        report.write_report(self.root, st["history"], metric, plots=self.plots)
        self._rewrite_journal()
        self._save_state()
        tqdm.write(entry["summary"])


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4g}"
