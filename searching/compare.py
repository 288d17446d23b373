"""AutoShrink versus random search at equal budget, over several seeds, in one harness.

    python searching/compare.py cnn --seeds 0 1 2 --out runs/compare-cnn -- <autoshrink_cnn flags>
    python searching/compare.py rnn --seeds 0 1 2 --out runs/compare-rnn -- <rnn train.py flags>

For each seed it runs AutoShrink, then random search with the budget AutoShrink actually used
(its trained, not cached, candidates), then retrains the best cell of each with one common
short recipe (the same proxy trainer with more data/epochs and one fixed seed), and prints a
table of mean +- std over seeds (proxy score, retrained accuracy or perplexity, MACs, params,
wall time) plus a plot. Finished runs are reused, so an interrupted comparison continues.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from api.runs.atomic_io import atomic_write_json
from api.errors import UserError, run_cli
from api.spaces.dag.graph_io import load_graph
from api.search.evaluator import Task
from api.search.executors import evaluate_safely
from searching.random_search.random_search import random_search
from searching.random_search.strategy import count_trainings

RETRAIN_SEED = 1234


def _space(name: str):
    if name == "cnn":
        from searching.cnn import autoshrink_cnn as cli

        return cli, cli.search_cnn, "model_root"
    if name == "rnn":
        from searching.rnn import train as cli
        from searching.rnn.autoshrink_rnn import search_rnn

        return cli, search_rnn, "save"
    raise UserError(f"unknown search space {name!r}: use cnn or rnn")


def _finished(root: str) -> bool:
    try:
        with open(os.path.join(root, "state.json"), encoding="utf-8") as f:
            return bool(json.load(f).get("done"))
    except (OSError, ValueError):
        return False


def run_pair(space: str, seed: int, out: str, flags: List[str]) -> Dict[str, float]:
    """AutoShrink then budget-matched random search for one seed; returns wall seconds."""
    cli, search, root_flag = _space(space)
    times = {}
    auto = os.path.join(out, f"autoshrink-s{seed}")
    rand = os.path.join(out, f"random-s{seed}")
    base = [*flags, "--seed", str(seed), "--quiet", "--no_plots"]
    for name, root in (("autoshrink", auto), ("random", rand)):
        if _finished(root):
            continue
        resume = ["--resume"] if os.path.exists(os.path.join(root, "state.json")) else []
        args = cli.build_parser()
        if name == "random":
            args.add_argument("--budget", type=int, default=0)
            args.add_argument("--match_run", default=None)
        ns = args.parse_args([*base, f"--{root_flag}", root, *resume,
                              *(["--match_run", auto] if name == "random" else [])])
        start = time.perf_counter()
        if name == "autoshrink":
            search(ns)
        else:
            random_search(ns, cli.build_components, root_flag)
        times[name] = time.perf_counter() - start
        atomic_write_json(os.path.join(root, "wall.json"), {"seconds": times[name]})
    return times


def retrain(space: str, graph_path: str, args: argparse.Namespace) -> float:
    """The common short recipe: the space's proxy trainer, more data/epochs, one fixed seed."""
    graph = load_graph(graph_path)
    if space == "cnn":
        from api.datasets import load_images, make_proxy
        from api.spaces.autoshrink_cnn.network import NetworkSpec
        from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig

        spec = NetworkSpec.from_dict(graph.settings["network"])
        data = make_proxy(load_images("cifar10", args.data), args.retrain_train,
                          args.retrain_val, RETRAIN_SEED)
        cfg = CNNProxyTrainConfig(epochs=args.retrain_epochs, patience=args.retrain_epochs + 1,
                               min_acc_epoch=0, overfit_ratio=float("inf"))
        ev = CNNProxyEvaluator(data, spec, cfg)
    else:
        from api.lm.data import Corpus
        from api.lm.embedding import embedding_matrix
        from searching.rnn.proxy import LMData, RNNProxyEvaluator, RNNProxyTrainConfig

        corpus = Corpus(args.data)
        emsize = int(graph.settings.get("emsize", 100))
        emb = embedding_matrix(corpus.dictionary.idx2word, emsize, None, RETRAIN_SEED)
        data = LMData(corpus.train, corpus.valid, corpus.ntokens, emb)
        ev = RNNProxyEvaluator(data, emsize, emsize,
                               RNNProxyTrainConfig(epochs=args.retrain_epochs,
                                              patience=args.retrain_epochs + 1))
    result = evaluate_safely(ev, Task("retrain", graph, RETRAIN_SEED))
    if result.fatal:  # a bug, not a training failure: never a quiet nan in the table
        print(result.traceback, file=sys.stderr)
        raise UserError(f"retraining {graph_path} raised {result.error}: a bug, not a "
                        "training failure (traceback above); fix it and rerun (finished runs "
                        "are kept)")
    if not result.ok:  # e.g. diverged at lr 20: reported as nan, not hidden
        print(f"retraining {graph_path} failed: {result.error}")
        return float("nan")
    return float(result.metrics[ev.metric])


def summarize(space: str, out: str, seeds: Sequence[int], args: argparse.Namespace) -> str:
    metric = "accuracy" if space == "cnn" else "perplexity"
    rows: Dict[str, Dict[str, List[float]]] = {}
    for method in ("autoshrink", "random"):
        cols: Dict[str, List[float]] = {k: [] for k in
                                        ("score", "retrained", "macs", "params", "wall", "n")}
        for seed in seeds:
            root = os.path.join(out, f"{method}-s{seed}")
            best = load_graph(os.path.join(root, "graph-best"))
            cache = os.path.join(root, "retrained.json")
            if os.path.exists(cache):
                value = json.load(open(cache))["value"]
            else:
                value = retrain(space, os.path.join(root, "graph-best"), args)
                atomic_write_json(cache, {"value": value, "metric": metric})
            cols["score"].append(best.score)
            cols["retrained"].append(value)
            cols["macs"].append(best.macs)
            cols["params"].append(best.params)
            cols["wall"].append(json.load(open(os.path.join(root, "wall.json")))["seconds"])
            cols["n"].append(count_trainings(root))
        rows[method] = cols

    def ms(values, scale=1.0, fmt="{:.3f}"):
        v = np.asarray(values, dtype=float) / scale
        ok = v[np.isfinite(v)]
        text = f"{fmt.format(ok.mean())} ± {fmt.format(ok.std())}" if len(ok) else "n/a"
        return text + (f" ({len(v) - len(ok)} failed)" if len(ok) < len(v) else "")

    unit = "MACs (M)" if space == "cnn" else "FLOPs (M)"
    lines = [f"| method | trained candidates | proxy score | retrained {metric} | {unit} | "
             "params (M) | wall (s) |", "|---|---|---|---|---|---|---|"]
    for method, c in rows.items():
        lines.append(f"| {method} | {ms(c['n'], fmt='{:.0f}')} | {ms(c['score'])} | "
                     f"{ms(c['retrained'], fmt='{:.3f}' if space == 'cnn' else '{:.1f}')} | "
                     f"{ms(c['macs'], 1e6, '{:.2f}')} | {ms(c['params'], 1e6, '{:.4f}')} | "
                     f"{ms(c['wall'], fmt='{:.0f}')} |")
    table = "\n".join(lines)
    _plot(rows, metric, unit, os.path.join(out, "compare.png"))
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    return table


def _plot(rows, metric: str, unit: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for method, marker in (("autoshrink", "o"), ("random", "s")):
        c = rows[method]
        ax.scatter(np.asarray(c["macs"]) / 1e6, c["retrained"], marker=marker, label=method)
    ax.set_xlabel(unit)
    ax.set_ylabel(f"retrained {metric}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("space", choices=["cnn", "rnn"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", required=True, help="folder of all runs and the table")
    p.add_argument("--data", required=True, help="dataset folder (also passed to the searches)")
    p.add_argument("--retrain_epochs", type=int, default=5)
    p.add_argument("--retrain_train", type=int, default=5000, help="CNN retraining images")
    p.add_argument("--retrain_val", type=int, default=1000, help="CNN retraining val images")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:split])  # after "--": flags of the space's AutoShrink CLI
    flags = argv[split + 1:] + ["--data", args.data]
    os.makedirs(args.out, exist_ok=True)
    for seed in args.seeds:
        run_pair(args.space, seed, args.out, flags)
    table = summarize(args.space, args.out, args.seeds, args)
    print(table)
    print(f"plot: {os.path.join(args.out, 'compare.png')}")


if __name__ == "__main__":
    run_cli(main)
