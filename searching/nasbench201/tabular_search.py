"""One tabular search in an output folder: journal, exact resume after kill -9, outputs.

Why a journal and no state snapshots: a method here is a deterministic function of its seed
and the table's answers, so the distinct cells queried *are* its state. Each new query is
appended to ``history.jsonl`` and fsynced; ``--resume`` drops a torn last line and reruns the
method from its seed replaying the journal (each replayed cell checked). As in AutoShrink's
searches (:mod:`searching.cell_search`): ``state.json`` written atomically, no overwrite without
``--resume``, other settings refused unless ``--force``, fault-injection points ``journal`` and
``save``.

See docs/nasbench201.md.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional

from api.runs.atomic_io import (append_jsonl, atomic_write_bytes, atomic_write_json,
                           atomic_write_text, read_jsonl, write_jsonl)
from api.benchmarks.nasbench201 import REPORTED_COLUMNS
from api.errors import UserError
from api.runs.fault_injection import maybe_die
from api.benchmarks.nb201_lookup import NB201Lookup
from api.spaces.arch_io import Arch, save_arch
from api.spaces.nasbench201.cell import arch_at
from api.machine import cpu_name
from api.search.report import png_bytes
from searching.nasbench201.methods import check_budget, check_settings, run_method
from api.runs.run_folder import check_resumable, on_interrupt, refuse_changed_settings, write_args

STATE_FILE = "state.json"
HISTORY_FILE = "history.jsonl"
STATE_VERSION = 1
SPACE = "nas-bench-201"


class TabularSearch:
    def __init__(self, root: str, evaluator: NB201Lookup, method: str, budget: int,
                 seed: int, settings: Optional[Dict[str, Any]] = None,
                 plots: bool = True) -> None:
        self.root = root
        self.evaluator = evaluator
        self.method = method
        self.budget = check_budget(budget)
        self.seed = int(seed)
        self.method_settings = check_settings(method, settings or {})
        self.plots = plots
        self._passes: Dict[str, int] = {}

    @property
    def settings(self) -> Dict[str, Any]:
        """Everything that decides the result (compared on --resume)."""
        return json.loads(json.dumps({
            "method": self.method, "budget": self.budget, "seed": self.seed,
            **self.method_settings, "evaluator": self.evaluator.describe()}))

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    # ------------------------------------------------------------------ state
    def _write_state(self, done: bool, queries: int) -> None:
        atomic_write_json(self._path(STATE_FILE), {
            "version": STATE_VERSION, "kind": type(self).__name__, "settings": self.settings,
            "done": done, "queries": queries})
        maybe_die(self._passes, "save")

    def start(self, args: Optional[Dict[str, Any]] = None) -> None:
        """Begin a search in a folder that holds none; ``args`` (the CLI's flags) go to
        ``args.json`` before the state, so a search killed at once still has them."""
        if os.path.exists(self._path(STATE_FILE)):
            raise UserError(f"{self.root} already holds a search: pass --resume to continue "
                            "it, or choose another output folder")
        os.makedirs(self.root, exist_ok=True)
        if args is not None:
            write_args(self.root, args)
        write_jsonl(self._path(HISTORY_FILE), [])
        self._write_state(done=False, queries=0)

    @staticmethod
    def check_resumable(root: str) -> None:
        check_resumable(root, STATE_FILE)  # the shrink searches' rule and message

    def resume(self, force: bool = False) -> List[Dict[str, Any]]:
        """Check the saved search; return the journal's records to replay."""
        self.check_resumable(self.root)
        try:
            with open(self._path(STATE_FILE), encoding="utf-8") as f:
                state = json.load(f)
            saved = dict(state["settings"])
            kind = state["kind"]
            records = read_jsonl(self._path(HISTORY_FILE))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise UserError(f"--resume: the search in {self.root} is damaged "
                            f"({type(exc).__name__}); start a new search in another "
                            "folder") from exc
        if kind != type(self).__name__ or state.get("version") != STATE_VERSION:
            raise UserError(f"--resume: {self.root} holds a {kind} (version "
                            f"{state.get('version')}), not a NAS-Bench-201 tabular search")
        if not force:
            refuse_changed_settings(saved, self.settings, self.root,
                                    fix="pass the same flags and benchmark file (or --force)")
        records = records[:self.budget]
        write_jsonl(self._path(HISTORY_FILE), records)  # without a torn last line
        return records

    # ------------------------------------------------------------------ run
    def _journal(self, rec: Dict[str, Any]) -> None:
        append_jsonl(self._path(HISTORY_FILE), rec)
        self._journalled += 1
        maybe_die(self._passes, "journal")

    def run(self, replay: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
        """Run (or finish) the search and write its outputs; returns the summary."""
        t0 = time.perf_counter()
        self._journalled = len(replay or ())
        on_interrupt(lambda: (f"the {self._journalled} queries so far are journalled in "
                              f"{self.root}; --resume replays them and goes on"))
        ledger = run_method(self.method, self.evaluator, self.budget, self.seed,
                            self.method_settings, on_query=self._journal, replay=replay or ())
        seconds = time.perf_counter() - t0
        if not ledger.records:
            raise UserError("the search queried no cell")
        summary = self._write_outputs(ledger.records, ledger.stalled, seconds)
        self._write_state(done=True, queries=len(ledger.records))
        return summary

    def _write_outputs(self, records: List[Dict[str, Any]], stalled: bool,
                       seconds: float) -> Dict[str, Any]:
        best = records[-1]
        index = best["best_index"]
        arch = Arch(SPACE, arch_at(index))
        save_arch(arch, self._path("arch-best"))
        table = self.evaluator.table
        ev = self.evaluator
        summary = {
            "method": self.method, "space": SPACE, "seed": self.seed, "dataset": ev.dataset,
            "budget": self.budget, "queries": len(records), "stalled": stalled,
            "arch": arch.text, "index": index,
            "signal": {"column": ev.describe()["signal"], "value": best["best_signal"]},
            "reported": {"column": ev.describe()["reported"], "value": best["best_reported"]},
            "benchmark_file": str(table.path),
            "benchmark": {d: float(table.columns[c][index]) for d, c in REPORTED_COLUMNS.items()
                          if c in table.columns},
            "settings": self.method_settings,
            "search_seconds": round(seconds, 4), "device": cpu_name()}
        atomic_write_json(self._path("summary.json"), summary)
        atomic_write_text(self._path("search.log"), "".join(
            f"query {r['query']:5d} | signal {r['signal']:7.3f} | reported {r['reported']:7.3f}"
            f" | best signal {r['best_signal']:7.3f} reported {r['best_reported']:7.3f} | "
            f"{r['arch']}\n" for r in records))
        if self.plots:
            atomic_write_bytes(self._path("search.png"), _plot(records, self.method, ev.dataset))
        return summary


def _plot(records: List[Dict[str, Any]], method: str, dataset: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = [r["query"] for r in records]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.scatter(q, [r["signal"] for r in records], s=6, alpha=0.5, label="signal (12-epoch valid)")
    ax.plot(q, [r["best_signal"] for r in records], lw=1.2, label="best signal so far")
    ax.plot(q, [r["best_reported"] for r in records], lw=1.5,
            label="its reported (200-epoch test)")
    ax.set_xlabel("distinct cells queried")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{method} on NAS-Bench-201 {dataset}")
    tops = [r["best_reported"] for r in records] + [r["best_signal"] for r in records]
    ax.set_ylim(min(tops) - 10, max(tops) + 2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return png_bytes(fig)
