"""The NAS-Bench-201 table of every discrete method over many seeds (scripts/table_nasbench201.sh).

Runs each method RUNS times on a BUDGET of distinct queries per dataset, prints mean ± std of
the found cell's 200-epoch test accuracy next to the paper's Table 5 rows and random search's
exact expectation (:mod:`searching.nasbench201.expected`), runs the weight-sharing searches as
a resumable sweep and adds their rows (:mod:`searching.nasbench201.ws_table`), and writes a
JSON table and its plots.

    python searching/nasbench201/table.py --benchmark_file F --out runs/nb201_table.json
        [--runs 100] [--budget 100] [--datasets cifar10 cifar100 imagenet16]
        [--ws_runs N --ws_methods gdas ... --ws_data DIR --ws_jobs 2] [--ws_folders DIR ...]

See docs/nasbench201.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from api.runs.atomic_io import atomic_write_bytes, atomic_write_json
from api.benchmarks.nasbench201 import DATASETS, load_table
from api.errors import UserError, run_cli
from api.benchmarks.nb201_lookup import NB201Lookup
from api.runs.sweep import add_sweep_flags, run_sweep, summary_line
from api.search.report import png_bytes
from searching.nasbench201.expected import expected_random_search
from searching.nasbench201.methods import METHODS, check_budget, run_method
from searching.nasbench201 import ws_table

#: NAS-Bench-201 (Dong & Yang, ICLR 2020) Table 5, CIFAR-10 test accuracy (mean ± std).
#: The paper's CIFAR-100 and ImageNet16-120 rows could not be checked
#: against the paper from this machine, so they are not printed.
PAPER = {"rs": {"cifar10": (93.70, 0.36)}, "rea": {"cifar10": (93.92, 0.30)},
         "reinforce": {"cifar10": (93.85, 0.37)}, "bohb": {"cifar10": (93.61, 0.52)}}
#: The paper's rows spend 12,000 s of simulated training per search: about 100 queries here.
PAPER_BUDGET = 100
def run_all(table, methods: Sequence[str], datasets: Sequence[str], runs: int,
            budget: int) -> Dict[str, Dict[str, np.ndarray]]:
    """method -> dataset -> (runs, budget) array of the best reported figure after each query
    (a stalled run keeps its last value)."""
    curves: Dict[str, Dict[str, np.ndarray]] = {}
    for dataset in datasets:
        evaluator = NB201Lookup(table, dataset)
        for method in methods:
            out = np.empty((runs, budget))
            for seed in range(runs):
                best = [r["best_reported"] for r in
                        run_method(method, evaluator, budget, seed).records]
                out[seed, :len(best)] = best
                out[seed, len(best):] = best[-1]
            curves.setdefault(method, {})[dataset] = out
    return curves


def _stats(values: Sequence[float]) -> Dict[str, float]:
    v = np.asarray(values, dtype=float)
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"mean": round(float(v.mean()), 4), "std": round(std, 4), "runs": int(v.size)}


def format_table(results: Dict, datasets: Sequence[str], expected: Dict[str, float],
                 budget: int) -> str:
    names = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16": "ImageNet16-120"}
    head = f"{'method':<16}" + "".join(f"{names[d] + ' test':>24}" for d in datasets)
    lines = [f"NAS-Bench-201, {budget} distinct queries per search, 200-epoch test accuracy of "
             "the found cell (mean ± std over runs)", head, "-" * len(head)]

    def row(label: str, cells: Dict[str, Optional[str]]) -> str:
        return f"{label:<16}" + "".join(f"{cells.get(d) or '-':>24}" for d in datasets)

    def cells(by_d: Dict) -> Dict[str, str]:
        return {d: f"{s['mean']:.2f} ± {s['std']:.2f} (n={s['runs']})" for d, s in by_d.items()}

    ws = [m for m in results if m in ws_table.WS_CLIS]
    for method in [m for m in results if m not in ws]:
        lines.append(row(method, cells(results[method])))
    if expected:
        lines.append(row("rs expected", {d: f"{v:.2f} (exact)" for d, v in expected.items()}))
    for method, by_d in PAPER.items():
        lines.append(row(f"paper {method}", {d: f"{m:.2f} ± {s:.2f}"
                                              for d, (m, s) in by_d.items()}))
    lines.append("paper rows: NAS-Bench-201 Table 5 (CIFAR-10 only; the CIFAR-100 and "
                 "ImageNet16-120 rows were not verified here)")
    if ws:
        lines.append("weight-sharing searches (each searched on the column's dataset; search "
                     "seconds: mean per search)")
        for method in ws:
            lines.append(row(method, cells(results[method])))
            paper = ws_table.PAPER_WS.get(method, {})
            lines.append(row(f"  paper {method}", {d: f"{m:.2f} ± {s:.2f}"
                                                    for d, (m, s) in paper.items()}))
            lines.append(row("  search s", {d: f"{c['search_seconds']:.0f}"
                                            for d, c in results[method].items()
                                            if "search_seconds" in c}))
        lines.append("paper weight-sharing rows: NAS-Bench-201's, as later papers quote them "
                     "alike (figures they quote differently are left out)")
    if budget != PAPER_BUDGET:
        lines.append(f"caution: the paper's rows searched with 12,000 s of simulated training "
                     f"(about {PAPER_BUDGET} queries here), these with {budget}: compare them "
                     "with care")
    return "\n".join(lines)


def plot(curves: Dict[str, Dict[str, np.ndarray]], datasets: Sequence[str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 3.6),
                             squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for method, by_d in curves.items():
            c = by_d[dataset]
            x = np.arange(1, c.shape[1] + 1)
            mean, std = c.mean(axis=0), c.std(axis=0)
            ax.plot(x, mean, lw=1.5, label=method)
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        ax.set_title(f"NAS-Bench-201 {dataset}")
        ax.set_xlabel("distinct cells queried")
        ax.set_ylabel("test acc. of best-by-signal cell (%)")
        top = max(by_d[dataset].mean(axis=0)[-1] for by_d in curves.values())
        ax.set_ylim(top - 8, top + 2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return png_bytes(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="table.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmark_file", required=True, help="the NAS-Bench-201 table")
    p.add_argument("--out", required=True, help="JSON results (the plot goes next to it, .png)")
    p.add_argument("--runs", type=int, default=100, help="searches per method (seeds 0..RUNS-1)")
    p.add_argument("--budget", type=int, default=100, help="distinct queries per search")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), help="datasets")
    p.add_argument("--methods", nargs="+", default=list(METHODS), help="discrete methods")
    p.add_argument("--no_plots", action="store_true", help="skip the plots")
    g = p.add_argument_group("weight-sharing searches (a sweep, resumable: run again to go on)")
    g.add_argument("--ws_runs", type=int, default=0,
                   help="searches per weight-sharing method and dataset (seeds 0..N-1; 0: none)")
    g.add_argument("--ws_methods", nargs="+", default=list(ws_table.WS_METHODS),
                   help=f"weight-sharing methods (default: {' '.join(ws_table.WS_METHODS)})")
    g.add_argument("--ws_datasets", nargs="+", default=None,
                   help="datasets searched (default: those of --datasets in "
                        f"{', '.join(ws_table.WS_DATASETS)})")
    g.add_argument("--ws_epochs", type=int, default=None,
                   help="search epochs (default: each method's own, the paper's)")
    g.add_argument("--ws_train_size", type=int, default=None,
                   help="training images per search (default: the whole training split)")
    g.add_argument("--ws_data", default="./data", help="folder holding the datasets")
    g.add_argument("--ws_device", default="auto", help="the searches' --device")
    g.add_argument("--ws_flags", default="",
                   help="more flags for every search CLI, one string (e.g. "
                        "'--init_channels 4 --layers 1')")
    g.add_argument("--ws_root", default=None,
                   help="the sweep folder (default: <out stem>_ws next to --out); searches go "
                        "to <root>/<dataset>/<method>/seed<k>")
    add_sweep_flags(g, "ws_")
    g.add_argument("--ws_folders", nargs="*", default=[],
                   help="finished weight-sharing search folders (or folders of them) to add "
                        "as rows too")
    return p


def run_weight_sharing(args: argparse.Namespace, table_datasets: Sequence[str]
                       ) -> Tuple[Dict, List[Dict], List]:
    """The sweep of weight-sharing searches and the given folders: (rows, summaries,
    sweep results)."""
    summaries = ws_table.folder_summaries(args.ws_folders)
    results: List = []
    if args.ws_runs > 0:
        datasets = ws_table.ws_datasets(args.ws_datasets, table_datasets)
        if not datasets:
            raise UserError("--ws_runs: none of the table's datasets is searched with weight "
                            f"sharing here ({', '.join(ws_table.WS_DATASETS)}): set WS_DATASETS")
        methods = ws_table.check_methods(args.ws_methods)
        root = args.ws_root or os.path.splitext(args.out)[0] + "_ws"
        jobs = ws_table.ws_jobs(methods, datasets, args.ws_runs, root, args.ws_data,
                                args.benchmark_file, args.ws_epochs, args.ws_train_size,
                                args.ws_device, args.ws_flags)
        on_ray = args.ray or bool(os.environ.get("RAY_ADDRESS"))
        print(f"weight-sharing searches: {len(jobs)} in {os.path.abspath(root)} ("
              + ("one Ray task each" if on_ray else f"{args.ws_jobs} at a time") + ")",
              flush=True)
        results = run_sweep(jobs, args.ws_jobs, args.ws_threads, args.ray, args.ray_address)
        print(summary_line(results), flush=True)
        summaries += ws_table.job_summaries([j for j, r in zip(jobs, results) if r.ok])
    return ws_table.ws_rows(summaries, table_datasets), summaries, results


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = build_parser().parse_args(argv)
    for d in args.datasets:
        if d not in DATASETS:
            raise UserError(f"unknown dataset {d!r} (datasets: {', '.join(DATASETS)})")
    for m in args.methods:
        if m not in METHODS:
            raise UserError(f"unknown method {m!r} (methods: {', '.join(METHODS)})")
    if args.runs < 2:
        raise UserError(f"RUNS must be at least 2 (a std needs two runs), got {args.runs}")
    budget = check_budget(args.budget)
    if args.ws_runs < 0:
        raise UserError(f"WS_RUNS must be 0 (none) or more, got {args.ws_runs}")
    if args.ws_jobs < 1:
        raise UserError(f"WS_JOBS (--ws_jobs) must be at least 1, got {args.ws_jobs}")
    if args.ws_threads < 0:
        raise UserError(f"WS_THREADS (--ws_threads) must be 0 (the default) or more, got "
                        f"{args.ws_threads}")
    table = load_table(args.benchmark_file)
    for d in args.datasets:  # every column present before any search runs
        table.signal(d), table.reported(d)
    t0 = time.perf_counter()
    curves = run_all(table, args.methods, args.datasets, args.runs, budget)
    seconds = time.perf_counter() - t0
    results = {m: {d: _stats(c[:, -1]) for d, c in by_d.items()} for m, by_d in curves.items()}
    ws, summaries, sweep = run_weight_sharing(args, args.datasets)
    results.update(ws)
    expected = {d: expected_random_search(table.signal(d), table.reported(d), budget)
                for d in args.datasets}
    print(format_table(results, args.datasets, expected, budget))
    n = len(args.methods) * len(args.datasets) * args.runs
    print(f"{n} searches in {seconds:.1f} s")
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}", end="")
    if not args.no_plots:
        png = os.path.splitext(args.out)[0] + ".png"
        atomic_write_bytes(png, plot(curves, args.datasets))
        print(f" and {png}", end="")
        if summaries:
            stem = os.path.splitext(args.out)[0]
            atomic_write_bytes(stem + "_ws.png", ws_table.plot_curves(summaries, args.datasets))
            atomic_write_bytes(stem + "_cells.png", ws_table.plot_cells(summaries))
            print(f", {stem}_ws.png and {stem}_cells.png", end="")
    print()
    failed = [r for r in sweep if not r.ok]
    if failed:
        raise UserError(f"{len(failed)} weight-sharing search(es) failed ("
                        f"{', '.join(r.name for r in failed)}): their rows leave them out; see "
                        "the logs named above, then run again to retry them")
    return results


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
