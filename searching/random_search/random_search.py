"""Random search at AutoShrink's budget: the baseline every NAS result should beat.

    python searching/random_search/random_search.py cnn --model_root runs/random --nodes 8 --max_steps 10 ...
    python searching/random_search/random_search.py rnn --save runs/random-rnn --nodes 6 ...

Takes exactly the flags of the AutoShrink CLI of that space (same data, proxy training, seed
handling and outputs) plus ``--budget``. It samples random subgraphs of the same complete DAG
(same ops_def, drawn from the same seed): each sample keeps every edge with a probability that
is itself drawn uniformly, so all cell sizes are visited; graphs already evaluated are not
drawn again. The default budget is the number of candidate trainings of an AutoShrink run
with the same settings (``--match_run DIR`` counts them in a finished run instead).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

from api.errors import UserError, run_cli
from api.runs.run_folder import adopt_recorded_flags, check_device, given_flags, resolve_seed
from api.spaces.dag.graph import CellGraph
from searching.random_search.strategy import (RandomConfig, RandomSearch, autoshrink_budget,
                                       count_trainings)
from searching.fused import accelerate
from searching.runner import SearchComponents, open_search, run_search
from searching.cell_search import CellSearch


def _space(name: str):
    if name == "cnn":
        from searching.cnn import autoshrink_cnn as cli

        return cli.build_parser(), cli.build_components, "model_root"
    if name == "rnn":
        from searching.rnn import train as cli

        return cli.build_parser(), cli.build_components, "save"
    raise UserError(f"unknown search space {name!r}: use cnn or rnn")


def parse(argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, Any, str]:
    """The flags of the space's AutoShrink CLI plus the budget; with --resume, the flags not
    given take the run's recorded values."""
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
    args = parser.parse_args(argv[1:])
    adopt_recorded_flags(args, getattr(args, root_flag), given_flags(parser, argv[1:]), root_flag)
    return args, components, root_flag


def random_search(args: argparse.Namespace,
                  components: Callable[[argparse.Namespace], SearchComponents],
                  root_flag: str) -> CellGraph:
    root = getattr(args, root_flag)
    if getattr(args, "fused", False):  # the AutoShrink CLIs' flag: not silently ignored
        raise UserError("--fused trains an AutoShrink step's candidates together; the random "
                        "search does not support it (drop --fused)")
    check_device(args.device)
    if args.resume:  # checked before the data is loaded: fail fast
        CellSearch.check_resumable(root)
    resolve_seed(args, root)
    if args.match_run:
        args.budget = count_trainings(args.match_run)
    built = components(args)
    initial = built.make_initial(np.random.default_rng(args.seed))
    if args.budget == 0:
        args.budget = autoshrink_budget(initial.num_edges, args.max_steps, args.keep_fraction)
    built.settings["budget"] = args.budget
    config = RandomConfig(k=args.max_steps, budget=args.budget, seed=args.seed)
    search = accelerate(open_search(RandomSearch, config, args, root, lambda: built), args)
    return run_search(search, root)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args, components, root_flag = parse(argv)
    random_search(args, components, root_flag)


if __name__ == "__main__":
    run_cli(main)
