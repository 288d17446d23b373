"""The weight-sharing rows of the NAS-Bench-201 table (searching/nasbench201/table.py): each
method's searches run from its own CLI as a sweep (:mod:`api.runs.sweep`), each found cell
looked up in the benchmark, one row per method next to the paper's, and two pictures (the
found cell's benchmark accuracy per epoch; the found cells).

Searches and rows follow NAS-Bench-201's protocol: a method searches on each dataset, and that
dataset's column holds the found cell's 200-epoch test accuracy on it. See docs/nasbench201.md.
"""
from __future__ import annotations

import glob
import json
import os
import shlex
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from api.errors import UserError
from api.runs.sweep import REPO, Job

#: Method keys, in the paper's table order.
WS_METHODS = ("rsps", "darts-v1", "darts-v2", "gdas", "setn", "enas")
#: Each method's search: its CLI (relative to the repository) and the flags that pick it.
WS_CLIS: Dict[str, List[str]] = {
    "rsps": ["searching/rsps/search.py"],
    "darts-v1": ["searching/darts/train_search.py"],
    "darts-v2": ["searching/darts/train_search.py", "--unrolled"],
    "gdas": ["searching/gdas/search.py"],
    "setn": ["searching/setn/search.py"],
    "enas": ["searching/enas/search_nb201.py"],
}
#: The datasets the weight-sharing searches run on (ImageNet16-120 is not searched here).
WS_DATASETS = ("cifar10", "cifar100")
#: NAS-Bench-201's weight-sharing rows, test accuracy (mean ± std), only the figures that
#: several later papers quote alike: quotes of its RSPS and ENAS rows differ between papers
#: (and between the paper's versions) beyond CIFAR-10
#: (docs/nasbench201.md, Weight-sharing rows).
PAPER_WS: Dict[str, Dict[str, Tuple[float, float]]] = {
    "rsps": {"cifar10": (87.66, 1.69)},
    "darts-v1": {"cifar10": (54.30, 0.00), "cifar100": (15.61, 0.00),
                 "imagenet16": (16.32, 0.00)},
    "darts-v2": {"cifar10": (54.30, 0.00), "cifar100": (15.61, 0.00),
                 "imagenet16": (16.32, 0.00)},
    "gdas": {"cifar10": (93.61, 0.09), "cifar100": (70.70, 0.30),
             "imagenet16": (41.71, 0.98)},
    "setn": {"cifar10": (87.64, 0.00)},
    "enas": {"cifar10": (54.30, 0.00)},
}


# ---------------------------------------------------------------------------- the sweep
def check_methods(methods: Sequence[str]) -> List[str]:
    for m in methods:
        if m not in WS_CLIS:
            raise UserError(f"unknown weight-sharing method {m!r} (methods: "
                            f"{', '.join(WS_METHODS)})")
    missing = [f"{m} ({WS_CLIS[m][0]})" for m in methods
               if not (REPO / WS_CLIS[m][0]).is_file()]
    if missing:
        raise UserError(f"WS_METHODS: no search CLI in this checkout for {', '.join(missing)}; "
                        "leave them out of WS_METHODS")
    return list(methods)


def ws_datasets(requested: Optional[Sequence[str]], datasets: Sequence[str]) -> List[str]:
    """The datasets to search: those asked for (each must be searchable), else the table's
    datasets that weight sharing searches here."""
    if requested:
        for d in requested:
            if d not in WS_DATASETS:
                raise UserError(f"WS_DATASETS: {d!r} is not searched with weight sharing here "
                                f"(choose from {', '.join(WS_DATASETS)})")
        return list(requested)
    return [d for d in datasets if d in WS_DATASETS]


def search_folder(root: str, dataset: str, method: str, seed: int) -> str:
    return os.path.join(os.path.abspath(root), dataset, method, f"seed{seed}")


def ws_jobs(methods: Sequence[str], datasets: Sequence[str], runs: int, root: str, data: str,
            benchmark_file: str, epochs: Optional[int] = None,
            train_size: Optional[int] = None, device: str = "auto",
            flags: str = "") -> List[Job]:
    """One job per method, dataset and seed 0..runs-1: the method's CLI with the shared
    one-shot flags, writing ``root/<dataset>/<method>/seed<k>``. Unset ``epochs`` and
    ``train_size`` leave the CLI's defaults (the paper's); ``flags`` go to every CLI."""
    extra = shlex.split(flags or "")
    jobs = []
    for dataset in datasets:
        for method in methods:
            for seed in range(runs):
                folder = search_folder(root, dataset, method, seed)
                argv = [*WS_CLIS[method], "--space", "nas-bench-201", "--dataset", dataset,
                        "--data", os.path.abspath(data), "--save", folder, "--seed", str(seed),
                        "--device", device, "--benchmark_file", os.path.abspath(benchmark_file),
                        "--quiet", "--no_plots"]
                if epochs:
                    argv += ["--epochs", str(epochs)]
                if train_size:
                    argv += ["--train_size", str(train_size)]
                jobs.append(Job(f"{method}-{dataset}-seed{seed}", argv + extra, folder))
    return jobs


# ---------------------------------------------------------------------------- rows
def read_summary(path: str, what: str = "WS_FOLDERS") -> Dict:
    try:
        with open(path, encoding="utf-8") as f:
            s = json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"{what}: {path} is not readable JSON ({type(exc).__name__})") from exc
    if not isinstance(s, dict):
        raise UserError(f"{what}: {path} is not a search summary")
    return s


def folder_summaries(folders: Sequence[str]) -> List[Dict]:
    """The summaries of finished weight-sharing searches in ``folders`` (each a search folder
    or a folder of them, at any depth), each with its ``folder``; unfinished searches are
    left out, and said so."""
    out, unfinished = [], []
    for folder in folders:
        path = os.path.join(folder, "summary.json")
        paths = [path] if os.path.isfile(path) else sorted(
            glob.glob(os.path.join(folder, "**", "summary.json"), recursive=True))
        if not paths:
            raise UserError(f"WS_FOLDERS: {folder} holds no summary.json (nor do its "
                            "subfolders)")
        for p in paths:
            s = read_summary(p)
            if s.get("method") not in WS_METHODS or not isinstance(s.get("benchmark"), dict):
                raise UserError(f"WS_FOLDERS: {p} is not a weight-sharing NAS-Bench-201 search "
                                "run with --benchmark_file (no method/benchmark fields)")
            if s.get("finished", True):
                out.append(dict(s, folder=os.path.dirname(p)))
            else:
                unfinished.append(os.path.dirname(p))
    if unfinished:
        print(f"WS_FOLDERS: {len(unfinished)} unfinished search(es) left out "
              f"({', '.join(unfinished[:3])}{', ...' if len(unfinished) > 3 else ''})")
    return out


def job_summaries(jobs: Sequence[Job]) -> List[Dict]:
    """The summaries of the sweep's finished searches, keyed by the job's method."""
    out = []
    for job in jobs:
        path = os.path.join(job.folder, "summary.json")
        if os.path.isfile(path):
            s = read_summary(path, "weight-sharing search")
            if s.get("finished", True) and isinstance(s.get("benchmark"), dict):
                method = os.path.basename(os.path.dirname(job.folder))  # <dataset>/<method>/seed<k>
                out.append(dict(s, method=method, folder=job.folder))
    return out


def _stats(values: Sequence[float]) -> Dict[str, float]:
    v = np.asarray(values, dtype=float)
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"mean": round(float(v.mean()), 4), "std": round(std, 4), "runs": int(v.size)}


def ws_rows(summaries: Sequence[Dict], datasets: Sequence[str]) -> Dict[str, Dict[str, Dict]]:
    """method -> dataset -> {mean, std, runs, search_seconds}: the found cells' 200-epoch test
    accuracy on the dataset each search ran on, and the searches' mean seconds."""
    acc: Dict[str, Dict[str, List[float]]] = {}
    secs: Dict[str, Dict[str, List[float]]] = {}
    for s in summaries:
        method, dataset, bench = s["method"], s.get("dataset"), s["benchmark"]
        if dataset in datasets and bench.get(dataset) is not None:
            acc.setdefault(method, {}).setdefault(dataset, []).append(float(bench[dataset]))
            secs.setdefault(method, {}).setdefault(dataset, []).append(
                float(s.get("search_seconds") or 0.0))
    order = {m: i for i, m in enumerate(WS_METHODS)}
    return {m: {d: dict(_stats(v), search_seconds=round(float(np.mean(secs[m][d])), 3))
                for d, v in sorted(acc[m].items(), key=lambda kv: list(datasets).index(kv[0]))}
            for m in sorted(acc, key=lambda m: order.get(m, len(order)))}


# ---------------------------------------------------------------------------- pictures
def per_epoch(summary: Dict) -> List[Optional[float]]:
    """The benchmark accuracy of each epoch's derived cell on the search's dataset
    (``summary.json``'s ``benchmark_per_epoch``, else ``history.jsonl``)."""
    dataset = summary.get("dataset")
    records = summary.get("benchmark_per_epoch")
    if records is None:
        path = os.path.join(summary.get("folder", ""), "history.jsonl")
        try:
            with open(path, encoding="utf-8") as f:
                records = [json.loads(x).get("benchmark") for x in f if x.strip()]
        except (OSError, ValueError):
            records = []
    return [r.get(dataset) if isinstance(r, dict) else None for r in records]


def plot_curves(summaries: Sequence[Dict], datasets: Sequence[str]) -> bytes:
    """One panel per dataset: the derived cell's benchmark test accuracy after each epoch,
    one line per search, one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from api.search.report import png_bytes

    colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(WS_METHODS)}
    shown = [d for d in datasets if any(s.get("dataset") == d for s in summaries)] or \
        list(datasets)[:1]
    fig, axes = plt.subplots(1, len(shown), figsize=(5.0 * len(shown), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], shown):
        labelled = set()
        for s in summaries:
            if s.get("dataset") != dataset:
                continue
            ys = per_epoch(s)
            xs = [i + 1 for i, y in enumerate(ys) if y is not None]
            ys = [y for y in ys if y is not None]
            method = s["method"]
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, lw=1.2, alpha=0.8,
                    color=colours.get(method, "black"),
                    label=None if method in labelled else method)
            labelled.add(method)
        ax.set_title(f"NAS-Bench-201 {dataset}: cell derived after each epoch", fontsize=9)
        ax.set_xlabel("search epoch")
        ax.set_ylabel("200-epoch test accuracy (%)")
        ax.grid(alpha=0.3)
        if labelled:
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return png_bytes(fig)


def plot_cells(summaries: Sequence[Dict]) -> bytes:
    """The found cells, one panel per search, titled method, dataset, seed and accuracy."""
    from api.spaces.nasbench201.cell import Cell
    from api.spaces.nasbench201.draw import draw_cells

    order = {m: i for i, m in enumerate(WS_METHODS)}
    panels = []
    for s in sorted(summaries, key=lambda s: (str(s.get("dataset")),
                                              order.get(s["method"], 99), s.get("seed", 0))):
        try:
            cell = Cell.from_string(str(s.get("arch")))
        except UserError:
            continue
        acc = s["benchmark"].get(s.get("dataset"))
        panels.append((f"{s['method']} {s.get('dataset')} seed {s.get('seed')}"
                       + (f": {acc:.2f}" if acc is not None else ""), cell))
    return draw_cells(panels)
