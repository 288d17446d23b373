"""Glue shared by the search CLIs: open a search from flags, run it, report where results are.

A search space's CLI supplies ``components() -> (evaluator, objective, make_initial, settings)``
built from its flags; the same components serve AutoShrink and the random-search baseline.
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Tuple

from api.atomic_io import atomic_write_json
from api.graph import CellGraph
from api.search.executors import make_executor
from searching.search import CellSearch


def open_search(cls, config: Any, args: argparse.Namespace, root: str,
                components: Callable[[], Tuple]) -> CellSearch:
    """A search of class ``cls`` in ``root``, started or resumed as the flags say;
    ``components()`` builds the evaluator (loading data) only once the folder checks pass."""
    if args.resume:
        CellSearch.check_resumable(root)
    evaluator, objective, initial, settings = components()
    search = cls(root, evaluator, objective, config, settings=settings,
                 plots=not args.no_plots, progress=not args.quiet,
                 executor=make_executor(args.executor, args.workers, args.ray_address,
                                        args.gpus_per_candidate))
    if args.resume:
        search.resume(force=args.force)
    else:
        search.start(initial)
        atomic_write_json(os.path.join(root, "args.json"), vars(args))
    return search


def run_search(search: CellSearch, root: str) -> CellGraph:
    """Run a search to its end, release its workers, and say where the results are."""
    try:
        best = search.run()
    finally:
        search.executor.close()
    print(f"graph-best: {best!r}")
    print(f"wrote {os.path.join(root, 'graph-best')} (+ .json, .png), candidates.jsonl, "
          "logs and plots")
    return best
