"""Glue shared by the search CLIs: open a search from flags, run it, report where results are.

A search space's CLI supplies ``components() -> SearchComponents`` (evaluator, objective,
initial-graph maker, settings) built from its flags; the same components serve AutoShrink and
the random-search baseline.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict

import numpy as np

from api.runs.run_folder import RUN_FLAGS, add_run_flags, check_device, write_args
from api.spaces.dag.graph import CellGraph
from api.search.evaluator import Evaluator
from api.search.executors import add_executor_flags, make_executor
from api.search.objectives import Objective
from searching.cell_search import CellSearch


@dataclass
class SearchComponents:
    """What a search space's CLI builds from its flags for a search of any strategy."""

    #: trains and scores one candidate (its data already loaded)
    evaluator: Evaluator
    #: Result -> score
    objective: Objective
    #: the starting DAG from the search's seeded RNG
    make_initial: Callable[[np.random.Generator], CellGraph]
    #: the flags that define the search's results (checked by ``--resume``)
    settings: Dict[str, Any]


def add_search_flags(parser: argparse.ArgumentParser, root_flag: str, root_default: str,
                     keep_fraction: float, efficiency_weight: float, score_help: str):
    """The flags every search CLI shares (output folder, k, stopping point, score, seed,
    resume); returns the argument group so a CLI can add its own search flags."""
    g = parser.add_argument_group("search")
    g.add_argument(f"--{root_flag}", default=root_default, help="output folder of the search")
    g.add_argument("--max_steps", "--candidates_per_step", dest="max_steps", type=int, default=10,
                   help="AutoShrink's k: candidates (edge removals) trained per step; "
                        "--max_steps is the original's name for it")
    g.add_argument("--keep_fraction", type=float, default=keep_fraction,
                   help="stop when round(E0 * keep_fraction) edges remain")
    g.add_argument("--efficiency_weight", type=float, default=efficiency_weight, help=score_help)
    add_run_flags(g, root_flag, seed_help="seeds the op draw, edge order, data sampling and "
                                          "every candidate; -1: a random seed, printed")
    return g


# The flags of add_search_flags and add_runtime_flags that never change a search's results,
# so the --resume settings check ignores them (--threads is not here: it is kept on resume).
RUNTIME_FLAGS = RUN_FLAGS | {"no_plots", "executor", "workers", "ray_address",
                             "gpus_per_candidate"}


def add_runtime_flags(parser: argparse.ArgumentParser, group) -> None:
    """Where and how quietly a search runs (device, plots, progress bars, executor): flags
    that never change its results, so ``--resume`` accepts new values for them."""
    group.add_argument("--no_plots", action="store_true", help="skip PNG plots and drawings")
    add_executor_flags(parser)


def open_search(cls, config: Any, args: argparse.Namespace, root: str,
                components: Callable[[], SearchComponents]) -> CellSearch:
    """A search of class ``cls`` in ``root``, started or resumed as the flags say;
    ``components()`` builds the evaluator (loading data) only once the folder checks pass."""
    check_device(args.device)  # before any folder exists: a typo is not a candidate's failure
    if args.resume:
        CellSearch.check_resumable(root)
    built = components()
    search = cls(root, built.evaluator, built.objective, config, settings=built.settings,
                 plots=not args.no_plots, progress=not args.quiet,
                 executor=make_executor(args.executor, args.workers, args.ray_address,
                                        args.gpus_per_candidate))
    if args.resume:
        search.resume(force=args.force)
    else:
        search.start(built.make_initial)
        write_args(root, args)
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
