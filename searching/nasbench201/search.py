"""A discrete search on the NAS-Bench-201 table: every query a look-up, the answer judged by
the benchmark's ground truth.

    python searching/nasbench201/search.py --method {rs,rea,reinforce,shrink}
        --dataset {cifar10,cifar100,imagenet16} --budget 100 --seed 0
        --benchmark_file data/nasbench201/nb201.csv.gz --save DIR [--resume]

The search sees each cell's 12-epoch validation accuracy and returns the best by it; the
found cell is reported by its 200-epoch test accuracy. --budget counts distinct cells queried.
Method settings default to NAS-Bench-201's (see searching/nasbench201/methods.py). Outputs in
--save: arch-best (+ .json, .txt), history.jsonl, search.log, summary.json, search.png,
state.json, args.json. A killed search continues with --resume and ends as an uninterrupted one.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from api.benchmarks.nasbench201 import DATASETS, load_table
from api.runs.run_folder import (add_run_flags, adopt_recorded_flags, announce, given_flags,
                                   resolve_seed)
from api.errors import UserError, run_cli
from api.benchmarks.nb201_lookup import NB201Lookup
from searching.nasbench201.methods import METHODS, check_budget, check_settings
from searching.nasbench201.tabular_search import TabularSearch

DEFAULT_TABLE = os.path.join("data", "nasbench201", "nb201.csv.gz")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="search.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="rs", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--dataset", default="cifar10", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--budget", type=int, default=100,
                   help="distinct cells queried (100 is about NAS-Bench-201's 12,000 s)")
    p.add_argument("--benchmark_file", default=DEFAULT_TABLE,
                   help="the NAS-Bench-201 table (gzip CSV; or NAS-Bench-201-v1_*.pth / "
                        "NATS-tss-* with their API packages installed)")
    p.add_argument("--save", default=None,
                   help="output folder (default runs/nb201-<method>-<dataset>-seed<seed>)")
    add_run_flags(p, "save", device=False, quiet_help="print nothing but errors",
                  seed_help="seeds every random choice of the method")
    p.add_argument("--no_plots", action="store_true", help="skip search.png")
    g = p.add_argument_group("method settings (default: NAS-Bench-201's)")
    g.add_argument("--population", type=int, help="rea: population size (10)")
    g.add_argument("--sample_size", type=int, help="rea: tournament size (3)")
    g.add_argument("--lr", type=float, help="reinforce: Adam learning rate (0.001)")
    g.add_argument("--ema_momentum", type=float, help="reinforce: baseline momentum (0.9)")
    g.add_argument("--k", type=int, help="shrink: candidate removals per step (10: all edges)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    root = args.save or os.path.join("runs", f"nb201-{args.method}-{args.dataset}-seed{args.seed}")
    adopt_recorded_flags(args, root, given_flags(parser, argv), "save")
    resolve_seed(args, root)
    if args.dataset not in DATASETS:
        raise UserError(f"unknown --dataset {args.dataset!r} (datasets: {', '.join(DATASETS)})")
    given = {k: getattr(args, k) for k in ("population", "sample_size", "lr", "ema_momentum",
                                           "k") if getattr(args, k) is not None}
    settings = check_settings(args.method, given)
    check_budget(args.budget)
    if args.resume:
        TabularSearch.check_resumable(root)
    evaluator = NB201Lookup(load_table(args.benchmark_file), args.dataset)
    search = TabularSearch(root, evaluator, args.method, args.budget, args.seed, settings,
                           plots=not args.no_plots)
    replay = None
    if args.resume:
        replay = search.resume(force=args.force)
    else:
        search.start(vars(args))
    if not args.quiet:
        resumed = None if replay is None else (
            f"{len(replay)} of {args.budget} queries journalled, replayed from the journal; "
            f"{max(args.budget - len(replay), 0)} to go")
        announce(root, f"{args.method} on {args.dataset}: up to {args.budget} distinct cells "
                       "queried in the table (look-ups, no training: seconds)", resumed)
    summary = search.run(replay)
    if not args.quiet:
        print(f"{args.method} on {args.dataset}: {summary['queries']} cells queried; the found "
              f"cell's 12-epoch valid accuracy (the search signal) "
              f"{summary['signal']['value']:.2f}, its 200-epoch test accuracy (the benchmark's "
              f"figure) {summary['reported']['value']:.2f}")
        print(f"arch-best: {summary['arch']}")
        print(f"wrote {root}/ (arch-best, history.jsonl, summary.json, search.log"
              f"{', search.png' if not args.no_plots else ''})")
    return summary


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
