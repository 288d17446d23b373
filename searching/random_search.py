"""Random search at AutoShrink's budget: the baseline every NAS result should beat.

    python searching/random_search.py cnn --model_root runs/random --nodes 8 --max_steps 10 ...
    python searching/random_search.py rnn --save runs/random-rnn --nodes 6 ...

Takes exactly the flags of the AutoShrink CLI of that space (same data, proxy training, seed
handling and outputs) plus ``--budget``. It samples random subgraphs of the same complete DAG
(same ops_def, drawn from the same seed): each sample keeps every edge with a probability that
is itself drawn uniformly, so all cell sizes are visited; graphs already evaluated are not
drawn again. The default budget is the number of candidate trainings of an AutoShrink run
with the same settings (``--match_run DIR`` counts them in a finished run instead).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from api.atomic_io import read_jsonl
from api.errors import UserError, run_cli
from api.graph import CellGraph
from searching.runner import open_search, run_search
from searching.search import CellSearch

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


def autoshrink_budget(e0: int, k: int, keep_fraction: float) -> int:
    """Candidate trainings of an AutoShrink run that removes one edge per step."""
    threshold = int(round(e0 * keep_fraction))
    return sum(min(k, e) for e in range(e0, threshold, -1))


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


def _space(name: str):
    if name == "cnn":
        from searching.cnn import autoshrink_cnn as cli

        return cli.build_parser(), cli.build_components, "model_root"
    if name == "rnn":
        from searching.rnn import train as cli

        return cli.build_parser(), cli.build_components, "save"
    raise UserError(f"unknown search space {name!r}: use cnn or rnn")


def parse(argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, Any, str]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("usage: random_search.py {cnn,rnn} [the flags of that space's AutoShrink CLI] "
              "[--budget N | --match_run DIR]")
        raise SystemExit(0)
    parser, components, root_flag = _space(argv[0])
    parser.prog = f"random_search.py {argv[0]}"
    g = parser.add_argument_group("random search")
    g.add_argument("--budget", type=int, default=0,
                   help="candidate trainings (0: as many as AutoShrink with these flags)")
    g.add_argument("--match_run", default=None,
                   help="an AutoShrink run folder whose trained candidates set the budget")
    return parser.parse_args(argv[1:]), components, root_flag


def random_search(args: argparse.Namespace, components, root_flag: str) -> CellGraph:
    root = getattr(args, root_flag)
    if args.resume:  # checked before the data is loaded: fail fast
        CellSearch.check_resumable(root)
    if args.match_run:
        args.budget = count_trainings(args.match_run)
    built = components(args)
    initial = built[2](np.random.default_rng(args.seed))
    if args.budget == 0:
        args.budget = autoshrink_budget(initial.num_edges, args.max_steps, args.keep_fraction)
    built[3]["budget"] = args.budget
    config = RandomConfig(k=args.max_steps, budget=args.budget, seed=args.seed)
    print(f"random search: budget {args.budget} candidate trainings")
    return run_search(open_search(RandomSearch, config, args, root, lambda: built), root)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args, components, root_flag = parse(argv)
    random_search(args, components, root_flag)


if __name__ == "__main__":
    run_cli(main)
