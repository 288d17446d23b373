"""The machinery every cell search shares: state, journal, resume, candidate execution.

A search is a sequence of steps. Each step plans candidate graphs (a strategy decision),
trains them through an :class:`~api.search.Executor`, records every result, then advances
(another strategy decision). :class:`~searching.shrink.ShrinkSearch` (AutoShrink) and
:class:`~searching.random_search.random_search.RandomSearch` (the baseline) differ only in those two hooks.

Resume: the whole state (current graph, history, RNG state, the step's plan and finished
candidates) is written atomically to ``state.json`` after every candidate, so a killed search
restarted with ``resume()`` redoes at most the candidate in flight and ends with exactly the
result of an uninterrupted run. A candidate's training seed derives from the search seed and
the candidate's canonical hash, so a retrained candidate gets the same score.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from api.progress import progress, say
from api.runs.atomic_io import append_jsonl, atomic_write_json, write_jsonl
from api.runs.run_folder import (Projection, announce, check_resumable, on_interrupt,
                                  refuse_changed_settings)
from api.errors import UserError
from api.runs.fault_injection import maybe_die
from api.spaces.dag.graph import CellGraph
from api.spaces.dag.graph_io import save_graph
from api.search import report
from api.search.evaluator import Evaluator, Result, Task
from api.search.executors import Executor, InProcessExecutor
from api.search.objectives import Objective

STATE_FILE = "state.json"
CANDIDATES_FILE = "candidates.jsonl"
CURVES_FILE = "curves.jsonl"     # each trained candidate's per-epoch figures
ERRORS_FILE = "errors.log"  # the full traceback of every failed candidate, appended
STATE_VERSION = 1
# Fault injection for the resume tests (tests/test_*_search.py), inert unless set:
# AUTOSHRINK_TEST_DIE_AT="<point>:<n>" ends the process at once with os._exit(137), as kill -9
# would (no cleanup), the n-th time a search object passes <point>: "journal" (a candidate's
# record appended to candidates.jsonl, state.json not yet updated) or "save" (state.json
# written: after start, a step's plan, each candidate, a step's end).
EVALUATOR_KEY = "evaluator"  # settings entry holding Evaluator.describe()


class SearchStalled(UserError):
    """Every candidate of a step failed; the state is kept for --resume."""


class CandidateBug(UserError):
    """A candidate raised an exception that signals a bug rather than a training failure
    (see :func:`api.search.evaluator.is_training_failure`); the state is kept for --resume,
    which retrains the candidate."""


def _append_text(path: str, text: str) -> None:
    """Append ``text`` in one write and fsync it (an interrupted append loses only itself)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def candidate_seed(search_seed: int, graph_hash: str) -> int:
    """Seed of a candidate's training: fixed by the search seed and the candidate's graph."""
    digest = hashlib.sha256(f"{search_seed}:{graph_hash}".encode()).hexdigest()
    return int(digest[:8], 16)


def _journal_line(rec: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in rec.items() if k != "curve"}


def _curve_line(rec: Dict[str, Any]) -> Dict[str, Any]:
    return {"key": rec["key"], "step": rec["step"], "hash": rec["hash"],
            "status": rec["status"], "curve": rec["curve"]}


def _short(value: Any, limit: int = 60) -> str:
    text = "missing" if value is None else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4g}"


class CellSearch:
    """Base of the searches; subclasses implement the strategy hooks marked below."""

    x_label = "step"          # what the logs' first column and the plots' x axis show
    progress_unit = "step"

    def __init__(self, root: str, evaluator: Evaluator, objective: Objective, config: Any,
                 settings: Optional[Dict[str, Any]] = None, executor: Optional[Executor] = None,
                 plots: bool = True, progress: bool = True) -> None:
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
        self._resumed: Optional[str] = None  # what resume() found, said when the run starts
        self._passes: Dict[str, int] = {}  # fault-injection points passed (DIE_AT_ENV)

    # ------------------------------------------------------------------ strategy hooks
    def _init_strategy(self, graph: CellGraph) -> Dict[str, Any]:
        """Strategy fields of a new state."""
        raise NotImplementedError

    def _finished(self) -> bool:
        raise NotImplementedError

    def _progress(self) -> Tuple[int, int]:
        """(done, total) in ``progress_unit``s, for the progress bar."""
        raise NotImplementedError

    def _planned_trainings(self) -> int:
        """Candidate trainings the whole search plans (an upper bound: cached twins train
        nothing), for the plan line and the projected time."""
        raise NotImplementedError

    def _plan_text(self) -> str:
        epochs = getattr(getattr(self.evaluator, "config", None), "epochs", None)
        each = f" of up to {epochs} epoch{'s' if epochs != 1 else ''} each" if epochs else ""
        return f"at most {self._planned_trainings()} candidate trainings{each}"

    def _propose(self, rng: np.random.Generator, step: int) -> List[Tuple[str, CellGraph, Dict]]:
        """The step's candidates: (key, graph, extra record fields)."""
        raise NotImplementedError

    def _advance(self, recs: List[Dict], best: Dict, cands: Dict[str, CellGraph],
                 entry: Dict[str, Any]) -> CellGraph:
        """Move the search on after a step; fill ``entry['x']`` and ``entry['summary']``;
        return the step's best candidate graph."""
        raise NotImplementedError

    def _on_chosen(self, chosen: CellGraph) -> None:
        """Called with the step's best candidate, its metadata filled in."""

    def _setting_values(self) -> Dict[str, Any]:
        """Strategy settings that a resumed search must share."""
        return {"seed": self.config.seed}

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
        self.state = {
            "version": STATE_VERSION, "kind": type(self).__name__,
            "settings": self._all_settings(),
            "initial": graph.to_dict(), "graph": graph.to_dict(), "step": 0,
            "rng": rng.bit_generator.state, "plan": None, "records": [], "history": [],
            "best": None, "done": False, "seconds": 0.0,
        }
        self.state.update(self._init_strategy(graph))
        self._save_state()
        write_jsonl(os.path.join(self.root, CANDIDATES_FILE), [])

    @staticmethod
    def check_resumable(root: str) -> None:
        """Fail fast (before any data is loaded) when ``root`` holds no search to resume."""
        check_resumable(root, STATE_FILE)

    def resume(self, force: bool = False) -> None:
        """Load the state of the search in ``root``; refuse different settings unless forced."""
        self.check_resumable(self.root)
        try:
            with open(self.state_path, encoding="utf-8") as f:
                state = json.load(f)
            for key in ("graph", "rng", "records", "history", "settings", "kind"):
                state[key]  # noqa: B018 - a missing key means a damaged file
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise UserError(f"--resume: {self.state_path} is damaged ({type(exc).__name__}); "
                            "start a new search in another folder") from exc
        if state.get("version") != STATE_VERSION:
            raise UserError(f"--resume: {self.state_path} has state version "
                            f"{state.get('version')!r}, expected {STATE_VERSION}")
        if state["kind"] != type(self).__name__:
            raise UserError(f"--resume: {self.root} holds a {state['kind']}, not a "
                            f"{type(self).__name__}")
        if not force:
            self._check_settings(state["settings"])
        self.state = state
        plan = state.get("plan")
        if plan:  # retry candidates that failed before the interruption
            plan["results"] = {k: r for k, r in plan["results"].items() if r["status"] != "failed"}
        self._resumed = self._resumed_text()
        # The journal may hold a line the state never recorded (killed in between): rewrite it.
        self._rewrite_journal()

    def _all_settings(self) -> Dict[str, Any]:
        """The flags, the strategy's settings and what the evaluator says changes results
        (its training recipe and the content fingerprints of its data), as JSON has them."""
        described = json.loads(json.dumps(self.evaluator.describe()))
        return dict(self.settings, **self._setting_values(), **{EVALUATOR_KEY: described})

    def _check_settings(self, saved: Dict[str, Any]) -> None:
        now = self._all_settings()
        refuse_changed_settings(saved, now, self.root, skip={EVALUATOR_KEY}, dashes=True)
        saved_ev, now_ev = saved.get(EVALUATOR_KEY) or {}, now[EVALUATOR_KEY]
        diffs = [f"{key} ({_short(now_ev.get(key))} now, {_short(saved_ev.get(key))} then)"
                 for key in sorted(set(saved_ev) | set(now_ev))
                 if saved_ev.get(key) != now_ev.get(key)]
        if diffs:
            raise UserError(f"--resume: what the search in {self.root} trained on differs: "
                            f"{'; '.join(diffs)}; pass the same data (or --force to continue "
                            "anyway)")

    def _save_state(self) -> None:
        atomic_write_json(self.state_path, self.state)
        self._fault_point("save")

    def _fault_point(self, name: str) -> None:
        """Die here if DIE_AT_ENV names this pass through point ``name`` (tests only)."""
        maybe_die(self._passes, name)

    def _all_records(self) -> List[Dict[str, Any]]:
        records = list(self.state["records"])
        plan = self.state.get("plan")
        if plan:
            order = {t["key"]: n for n, t in enumerate(plan["tasks"])}
            records += sorted(plan["results"].values(), key=lambda r: order[r["key"]])
        return records

    def _rewrite_journal(self) -> None:
        records = self._all_records()
        write_jsonl(os.path.join(self.root, CANDIDATES_FILE), [_journal_line(r) for r in records])
        write_jsonl(os.path.join(self.root, CURVES_FILE),
                    [_curve_line(r) for r in records if r.get("curve")])

    @property
    def graph(self) -> CellGraph:
        return CellGraph.from_dict(self.state["graph"])

    @property
    def best(self) -> Optional[CellGraph]:
        best = self.state.get("best")
        return CellGraph.from_dict(best) if best else None

    # ------------------------------------------------------------------ loop
    def _trained(self) -> int:
        """Candidate results recorded so far (finished steps and the current one)."""
        return len(self._all_records())

    def _resumed_text(self) -> str:
        st = self.state
        if st["done"]:
            return f"the search in it had finished ({self._trained()} candidates): nothing to redo"
        plan = st.get("plan") or {}
        if plan:
            left = len(plan["tasks"]) - len(plan["results"])
            return (f"{self._trained()} candidate results kept, step {plan['step']} in progress "
                    f"with {len(plan['results'])} of {len(plan['tasks'])} candidates done; "
                    f"its {left} other candidate(s) train now")
        return (f"{self._trained()} candidate results kept, {len(st['history'])} steps done; "
                "the next step starts now")

    def run(self) -> CellGraph:
        if not self.state:
            raise RuntimeError("call start() or resume() before run()")
        st = self.state
        announce(self.root, self._plan_text(), self._resumed)
        self._projection = Projection("candidate training",
                                      str(getattr(getattr(self.evaluator, "config", None),
                                                  "device", "")))
        self._run_t0, self._run_trained = time.perf_counter(), 0
        on_interrupt(lambda: (
            f"{self._trained()} candidate results are saved in {self.root}; --resume keeps "
            "them and trains the candidates that were in flight again"))
        done, total = self._progress()
        bar = progress(total=total, initial=done, desc=type(self).__name__, unit=self.progress_unit,
                   disable=not self.progress, dynamic_ncols=True)
        try:
            while not st["done"]:
                if self._finished():
                    st["done"] = True
                    self._save_state()
                    break
                self._run_step()
                bar.update(self._progress()[0] - bar.n)
        finally:
            bar.close()
        if st["best"] is None:  # nothing to search: the initial graph is the answer
            st["best"] = st["graph"]
            self._save_state()
            save_graph(self.graph, os.path.join(self.root, "graph-best"), png=self.plots)
        return self.best

    def _plan_step(self) -> Dict[str, Any]:
        st = self.state
        rng = np.random.default_rng()
        rng.bit_generator.state = st["rng"]
        step = st["step"] + 1
        tasks = []
        for key, cand, extra in self._propose(rng, step):
            h = cand.canonical_hash()
            tasks.append(dict(extra, key=key, mask=cand.mask.tolist(), hash=h,
                              seed=candidate_seed(self.config.seed, h)))
        st["rng"] = rng.bit_generator.state
        st["plan"] = {"step": step, "tasks": tasks, "results": {}}
        self._save_state()
        return st["plan"]

    def _record(self, task: Dict[str, Any], result: Result, step: int,
                cand: CellGraph) -> Dict[str, Any]:
        score = self.objective(result) if result.ok else -math.inf
        rec = {k: v for k, v in task.items() if k != "mask"}
        rec.update({
            "step": step, "score": score if math.isfinite(score) else None,
            "macs": result.macs, "params": result.params, "seconds": round(result.seconds, 3),
            "epochs": result.epochs, "status": "ok" if result.ok else "failed",
            "edges": cand.num_edges,
        })
        rec[self.evaluator.metric] = result.metrics.get(self.evaluator.metric)
        for name, value in result.metrics.items():
            rec.setdefault(name, value)
        if result.error:
            rec["error"] = result.error
        if result.traceback:
            rec["traceback"] = result.traceback
        if result.fatal:
            rec["fatal"] = True
        if result.curve:  # kept in the state, written to curves.jsonl (not candidates.jsonl)
            rec["curve"] = result.curve
        return rec

    def _run_step(self) -> None:
        st = self.state
        plan = st["plan"] if st.get("plan") else self._plan_step()
        step, base = plan["step"], CellGraph.from_dict(st["initial"])
        cands = {t["key"]: base.with_mask(t["mask"]) for t in plan["tasks"]}
        known = {r["hash"]: r for r in self._all_records() if r["status"] != "failed"}
        to_train, waiting = [], []
        for t in plan["tasks"]:
            if t["key"] in plan["results"]:
                continue
            if t["hash"] in known or any(t["hash"] == o["hash"] for o in to_train):
                waiting.append(t)
            else:
                to_train.append(t)
        bar = progress(total=len(plan["tasks"]), initial=len(plan["results"]), leave=False,
                   desc=f"step {step} candidates", unit="cand", disable=not self.progress,
                   dynamic_ncols=True)

        def show_epoch(row: Dict[str, Any]) -> None:
            bar.set_postfix_str(" ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in row.items() if k != "seconds"))

        self.evaluator.epoch_callback = show_epoch if self.progress else None
        t0 = time.perf_counter()
        by_key = {t["key"]: t for t in to_train}
        tasks = [Task(t["key"], cands[t["key"]], t["seed"]) for t in to_train]
        results = self.executor.run(self.evaluator, tasks)
        try:
            for task, result in results:
                rec = self._record(by_key[task.key], result, step, task.graph)
                self._finish_candidate(plan, rec)
                if rec["status"] == "ok":
                    known[rec["hash"]] = rec
                bar.update(1)
                self._run_trained += 1
                self._projection.after(
                    time.perf_counter() - self._run_t0, self._run_trained,
                    max(self._planned_trainings() - self._trained(), 0),
                    getattr(self.executor, "workers", 1))
            for t in waiting:  # prunes to a graph already evaluated: reuse its result
                twin = known.get(t["hash"])
                if twin is None:  # its twin failed: train this one after all
                    task = Task(t["key"], cands[t["key"]], t["seed"])
                    (_, result), = list(self.executor.run(self.evaluator, [task]))
                    rec = self._record(t, result, step, cands[t["key"]])
                else:  # a cached twin trained nothing: no curve of its own
                    rec = {**{k: v for k, v in twin.items() if k != "curve"},
                           **{k: v for k, v in t.items() if k != "mask"},
                           "step": step, "seconds": 0.0, "status": "cached"}
                self._finish_candidate(plan, rec)
                bar.update(1)
        finally:  # a bug stops the step: the executor stops what it still runs
            getattr(results, "close", lambda: None)()
            bar.close()
            self.evaluator.epoch_callback = None
        st["seconds"] += time.perf_counter() - t0
        self._complete_step(plan, cands)

    def _finish_candidate(self, plan: Dict[str, Any], rec: Dict[str, Any]) -> None:
        append_jsonl(os.path.join(self.root, CANDIDATES_FILE), _journal_line(rec))
        if rec.get("curve"):
            append_jsonl(os.path.join(self.root, CURVES_FILE), _curve_line(rec))
        self._fault_point("journal")
        plan["results"][rec["key"]] = rec
        self._save_state()
        if rec["status"] == "failed":
            self._log_failure(rec)

    def _log_failure(self, rec: Dict[str, Any]) -> None:
        """Append a failed candidate's traceback to errors.log; stop the search (state kept,
        the candidate retried on --resume) when its exception signals a bug."""
        path = os.path.join(self.root, ERRORS_FILE)
        fatal = bool(rec.get("fatal"))
        what = "a bug: the search stopped" if fatal else "a training failure: the search goes on"
        _append_text(path, (
            f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} step {rec['step']} candidate "
            f"{rec['key']} (graph {rec.get('hash')}, seed {rec.get('seed')}): {what}\n"
            f"{rec.get('traceback') or rec.get('error') or 'no error recorded'}\n"))
        error = rec.get("error") or ""
        if fatal and error.startswith("UserError: "):  # a user's mistake met in a candidate
            message = error[len("UserError: "):].rsplit(" at ", 1)[0]
            raise UserError(f"{message} (candidate {rec['key']} of step {rec['step']}; the search "
                            "state is kept: fix it and rerun with --resume)")
        if fatal:
            raise CandidateBug(
                f"candidate {rec['key']} of step {rec['step']} raised {rec.get('error')}; this "
                f"is a bug, not a training failure (traceback in {path}); the search state is "
                "kept: fix the cause and rerun with --resume")

    def _complete_step(self, plan: Dict[str, Any], cands: Dict[str, CellGraph]) -> None:
        st = self.state
        recs = [plan["results"][t["key"]] for t in plan["tasks"]]
        ok = [r for r in recs if r["score"] is not None]
        if not ok:
            errors = "; ".join(sorted({str(r.get("error", "no score"))[:120] for r in recs}))
            raise SearchStalled(f"every candidate of step {plan['step']} failed ({errors}); "
                                f"the state in {self.root} is kept: fix the cause and --resume")
        best = max(ok, key=lambda r: r["score"])  # first of equal scores, in plan order
        metric = self.evaluator.metric
        values = [r[metric] for r in ok if r.get(metric) is not None]
        pick = max if self.evaluator.higher_is_better else min
        n_cached = sum(r["status"] == "cached" for r in recs)
        entry = {
            "step": plan["step"], "best_score": best["score"],
            "mean_score": float(np.mean([r["score"] for r in ok])),
            "best_metric": pick(values) if values else None,
            "mean_metric": float(np.mean(values)) if values else None,
            "mean_macs": float(np.mean([r["macs"] for r in ok])),
            "n_ok": len(ok) - n_cached, "n_cached": n_cached, "n_failed": len(recs) - len(ok),
        }
        st["records"].extend(recs)
        st["step"] = plan["step"]
        st["plan"] = None
        chosen = self._advance(recs, best, cands, entry)
        chosen.score, chosen.macs, chosen.params = best["score"], best["macs"], best["params"]
        setattr(chosen, metric, best.get(metric))
        chosen.step, chosen.seconds = plan["step"], round(st["seconds"], 1)
        self._on_chosen(chosen)
        entry["seconds"] = round(st["seconds"], 1)
        entry["summary"] = (
            f"step {entry['step']:3d} | {entry['summary']} | best score {entry['best_score']:.4f}"
            f" | mean score {entry['mean_score']:.4f} | best {metric} "
            f"{_fmt(entry['best_metric'])} | mean MACs {entry['mean_macs'] / 1e6:.2f}M | ok "
            f"{entry['n_ok']} cached {entry['n_cached']} failed {entry['n_failed']} | "
            f"{entry['seconds']:.0f}s")
        st["history"].append(entry)
        previous = st["best"]["meta"]["score"] if st["best"] else None
        if previous is None or best["score"] > previous:
            st["best"] = chosen.to_dict()
            save_graph(chosen, os.path.join(self.root, "graph-best"), png=self.plots)
        report.write_report(self.root, st["history"], metric, self.x_label, plots=self.plots)
        if self.plots and self.evaluator.curve_metric:
            report.plot_curves(self.root, st["records"], self.evaluator.curve_metric)
        self._rewrite_journal()
        self._save_state()
        say(entry["summary"])
